"""State snapshots (``dapp.snapshot``): canonical, lossless, and refused when not the state
the host recorded. The node's use of them is in ``tests/test_node_faults.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from dapp.records import Amount, Blob, Job, JobSpec, Round, Submission, Upload
from dapp.snapshot import (
    SnapshotInvalid,
    SnapshotWriter,
    decode_state,
    encode_state,
    load_snapshot,
    snapshot_paths,
)
from dapp.state import State
from deml_protocol.addresses import ETHER
from deml_protocol.metrics import Metric


def a_state_with_every_record() -> State:
    """Every table filled, every record type and every kind of value a record holds."""
    alice, bob = "0x" + "aa" * 20, "0x" + "bb" * 20
    spec = JobSpec(
        model_cid="bafy-model",
        recipe='{"trainer":"logreg"}',
        metric=Metric.ROC_AUC,
        holdout_rows=80,
        holdout_commitments=(b"\x01" * 32, b"\x02" * 32),
        commit_s=600,
        holdout_s=600,
        reveal_s=600,
        min_gain=1,
        max_submissions=8,
        commit_bond=Amount(10**15),
    )
    job = Job(
        id=1,
        sponsor=alice,
        asset=ETHER,
        escrow=Amount(10**18),
        spec=spec,
        created_ts=1_700_000_000,
        created_input=3,
        current_round=0,
        global_model_cid="bafy-model",
    )
    return State.from_tables(
        dict(
            balances={(ETHER, alice): Amount(5), (ETHER, bob): Amount(2**200)},
            counters={"next_job": 2, "blob_bytes": 11},
            blobs={"bafy-model": Blob(cid="bafy-model", size=11, uploader=alice, input_index=1)},
            blob_bytes={"bafy-model": b"\x00model\xffbytes"},
            uploads={
                (bob, "bafy-x"): Upload(
                    cid="bafy-x", uploader=bob, size=9, chunks=(b"abc",), received=3, started_ts=7
                )
            },
            jobs={1: job},
            rounds={
                (1, 0): Round(
                    job_id=1,
                    index=0,
                    budget=Amount(5 * 10**17),
                    model_cid="bafy-model",
                    start_ts=1,
                    commit_end_ts=2,
                    holdout_end_ts=3,
                    reveal_end_ts=4,
                    committers=(bob,),
                )
            },
            submissions={
                (1, 0, bob): Submission(
                    client=bob, commitment=b"\x03" * 32, bond=Amount(10**15), commit_input=4
                )
            },
            fingerprints={(1, b"\x04" * 32): "global"},
        )
    )


def test_a_snapshot_gives_back_the_same_state() -> None:
    state = a_state_with_every_record()
    assert all(state.tables().values())  # every table has an entry
    data = encode_state(state)
    loaded = decode_state(data)
    assert loaded == state and loaded.digest() == state.digest()
    assert encode_state(loaded) == data  # canonical: one encoding per state
    assert loaded.jobs[1].spec.metric is Metric.ROC_AUC  # a StrEnum, not just its str


def test_the_encoding_does_not_depend_on_insertion_order() -> None:
    one, two = State(), State()
    one.balances[("0x" + "00" * 20, "0x" + "aa" * 20)] = Amount(1)
    one.balances[("0x" + "00" * 20, "0x" + "bb" * 20)] = Amount(2)
    two.balances[("0x" + "00" * 20, "0x" + "bb" * 20)] = Amount(2)
    two.balances[("0x" + "00" * 20, "0x" + "aa" * 20)] = Amount(1)
    assert encode_state(one) == encode_state(two)


def test_the_writer_writes_only_after_every_nth_input(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path, every=3)
    state = State.from_tables({"counters": {"next_job": 7}})
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
    state = State.from_tables({"counters": {"next_job": 7}})
    state.blobs["cid"] = Blob(cid="cid", size=1, uploader="0x" + "aa" * 20, input_index=0)
    path = SnapshotWriter(tmp_path, every=1).after_input(state, 0)
    assert path is not None
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(SnapshotInvalid):
        load_snapshot(path, state.digest())


def test_a_snapshot_of_another_state_than_recorded_is_refused(tmp_path: Path) -> None:
    path = SnapshotWriter(tmp_path, every=1).after_input(
        State.from_tables({"counters": {"n": 1}}), 0
    )
    assert path is not None
    with pytest.raises(SnapshotInvalid):
        load_snapshot(path, State.from_tables({"counters": {"n": 2}}).digest())
