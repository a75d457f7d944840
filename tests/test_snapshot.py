"""State snapshots (``dapp.snapshot``): canonical, lossless, and refused when not the state
the host recorded. The node's use of them is in ``tests/test_node_faults.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dapp.records import Amount, Blob
from dapp.snapshot import (
    SnapshotInvalid,
    SnapshotWriter,
    decode_state,
    encode_state,
    load_snapshot,
    snapshot_paths,
)
from dapp.state import State
from deml_protocol.metrics import Metric
from devnet.in_process import InProcessMachine
from tests.machine_support import ALICE, BOB, Driver
from tests.test_jobs import CAROL, DAVE, ERIN, ETH, Market, play_round


@pytest.fixture
def market() -> Iterator[tuple[Market, InProcessMachine]]:
    with InProcessMachine() as machine:
        yield Market(Driver(machine), sponsor=ALICE, clients=[BOB, CAROL, DAVE, ERIN]), machine


def test_a_snapshot_gives_back_the_same_state(
    market: tuple[Market, InProcessMachine],
) -> None:
    """Every table filled: balances, blobs, a job with its spec and Metric, a played round
    with submissions, scores and fingerprints."""
    jobs, machine = market
    jobs.post(ETH, metric="roc_auc")
    play_round(
        jobs, 0, [jobs.train(i, jobs.initial_model) for i in range(3)] + [jobs.initial_model]
    )
    state = machine.dapp.state
    assert all(
        getattr(state, name) for name in ("blobs", "jobs", "rounds", "submissions", "fingerprints")
    )
    data = encode_state(state)
    loaded = decode_state(data)
    assert loaded == state and loaded.digest() == state.digest()
    assert encode_state(loaded) == data  # canonical: one encoding per state
    job = next(iter(loaded.jobs.values()))
    assert type(job.spec.metric) is type(next(iter(state.jobs.values())).spec.metric)


def test_a_metric_keeps_its_type() -> None:
    state = State(counters={"n": 1})
    state.fingerprints[(1, b"x")] = Metric.ROC_AUC  # any table: the type survives the trip
    loaded = decode_state(encode_state(state))
    assert loaded.fingerprints[(1, b"x")] is Metric.ROC_AUC


def test_the_encoding_does_not_depend_on_insertion_order() -> None:
    one, two = State(), State()
    one.balances[("0x" + "00" * 20, "0x" + "aa" * 20)] = Amount(1)
    one.balances[("0x" + "00" * 20, "0x" + "bb" * 20)] = Amount(2)
    two.balances[("0x" + "00" * 20, "0x" + "bb" * 20)] = Amount(2)
    two.balances[("0x" + "00" * 20, "0x" + "aa" * 20)] = Amount(1)
    assert encode_state(one) == encode_state(two)


def test_the_writer_writes_only_after_every_nth_input(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path, every=3)
    state = State(counters={"next_job": 7})
    written = [writer.after_input(state, i) for i in range(7)]
    assert [p is not None for p in written] == [False, False, True, False, False, True, False]
    path, digest_path = snapshot_paths(tmp_path, 5)
    assert digest_path.read_text() == state.digest()
    assert load_snapshot(path, state.digest()) == state


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data.replace(b'"7"', b'"8"'),  # another state, digest file unchanged
        lambda data: data.replace(b'"Blob"', b'"Popen"'),  # a class that is not a record
        lambda data: b"\x00" + data,
    ],
)
def test_a_damaged_snapshot_is_refused(tmp_path: Path, damage: object) -> None:
    state = State(counters={"next_job": 7})
    state.blobs["cid"] = Blob(cid="cid", size=1, uploader="0x" + "aa" * 20, input_index=0)
    path = SnapshotWriter(tmp_path, every=1).after_input(state, 0)
    assert path is not None
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(SnapshotInvalid):
        load_snapshot(path, state.digest())


def test_a_snapshot_of_another_state_than_recorded_is_refused(tmp_path: Path) -> None:
    path = SnapshotWriter(tmp_path, every=1).after_input(State(counters={"n": 1}), 0)
    assert path is not None
    with pytest.raises(SnapshotInvalid):
        load_snapshot(path, State(counters={"n": 2}).digest())
