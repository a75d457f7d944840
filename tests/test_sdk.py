"""The client SDK (``deml_console.sdk``) on the in-process DApp: typed rejections by code,
decoded notices and vouchers, typed query replies, and a whole small job through ``Client``
alone. The same client runs against the real node in ``test_scenarios.py``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from deml_console.model_zoo import logistic_regression
from deml_console.sdk import Client, MachineTransport, notice, notices, rejection, vouchers
from deml_protocol import inputs
from deml_protocol.cid import compute_cid
from deml_protocol.commitments import holdout_commitment
from deml_protocol.errors import (
    DepositRequired,
    InsufficientBalance,
    NoCommitment,
    NoSuchJob,
    NotFoundError,
    UploadInProgress,
    WindowNotOpen,
)
from deml_protocol.uploads import upload_inputs
from devnet.guest_server import Result
from devnet.host_machine import HostMachine
from devnet.in_process import InProcessMachine

SPONSOR, ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20, "0x" + "c0" * 20
WINDOW = 600
SHARD_SALT, ALICE_SALT, BOB_SALT = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32


@pytest.fixture
def net() -> Iterator[MachineTransport[Result]]:
    with InProcessMachine() as machine:
        yield MachineTransport(machine)


def test_the_guest_api_server_transport() -> None:
    """The real ``python -m dapp`` behind the guest API server, over HTTP, same client."""
    with HostMachine() as machine:
        alice = Client(MachineTransport(machine), ALICE)
        alice.deposit_ether(5)
        assert alice.balances()["ether"] == "5"
        with pytest.raises(InsufficientBalance):
            alice.withdraw_ether(6)
        assert [v.value for v in vouchers(alice.withdraw_ether(5))] == [5]


def spec(model_cid: str, shard_cid: str) -> dict[str, object]:
    return {
        "modelCid": model_cid,
        "recipe": "{}",
        "metric": "accuracy",
        "holdoutRows": 100,
        "holdoutCommitments": [holdout_commitment(shard_cid, SHARD_SALT)],
        "commitSeconds": WINDOW,
        "holdoutSeconds": WINDOW,
        "revealSeconds": WINDOW,
        "minGain": 1,
        "maxSubmissions": 4,
        "commitBond": 0,
        "payout": "proportional",
        "aggregation": "fedavg",
        "trimPercent": 0,
    }


def shard() -> bytes:
    from deml_console.datasets import breast_cancer_federation, shard_bytes

    return shard_bytes(*breast_cancer_federation().holdouts[0])


def test_rejections_raise_typed_errors_by_code(net: MachineTransport[Result]) -> None:
    alice = Client(net, ALICE)
    with pytest.raises(InsufficientBalance):
        alice.withdraw_ether(1)
    with pytest.raises(DepositRequired) as raised:
        alice.send(inputs.CREATE_JOB.encode(**spec(compute_cid(b"x"), compute_cid(b"y"))))
    assert raised.value.code == "deposit_required" and str(raised.value)
    with pytest.raises(NotFoundError):  # a cause group catches every code of its cause
        alice.job(7)
    with pytest.raises(NoSuchJob):
        alice.round(7, 0)
    outcome = net.send(ALICE, inputs.WITHDRAW_ETHER.encode(1))  # the unchecked way
    assert isinstance(rejection(outcome), InsufficientBalance)
    assert alice.balances()["ether"] == "0"  # nothing moved


def test_a_small_job_through_the_client(net: MachineTransport[Result]) -> None:
    sponsor, alice, bob = (Client(net, who) for who in (SPONSOR, ALICE, BOB))
    model = logistic_regression(np.zeros(30))
    data = shard()
    shard_cid = compute_cid(data)
    model_cid = sponsor.upload(model)
    assert sponsor.upload(model) == model_cid  # stored already: nothing sent twice
    job_id = sponsor.create_job(spec(model_cid, shard_cid), 1000)
    assert [job["id"] for job in alice.jobs()] == [job_id]
    trained = logistic_regression(np.linspace(-0.1, 0.1, 30))
    trained_cid = compute_cid(trained)
    alice.commit(job_id, 0, trained_cid, ALICE_SALT)
    bob.commit(job_id, 0, model_cid, BOB_SALT)  # the global model: a copy
    with pytest.raises(WindowNotOpen):
        alice.reveal_model(job_id, 0, trained_cid, ALICE_SALT)
    net.send(SPONSOR, b"\0\0\0\0", advance_time=WINDOW)  # block time passes
    sponsor.upload(data)
    sponsor.reveal_holdout(job_id, 0, shard_cid, SHARD_SALT)
    alice.upload(trained)
    alice.reveal_model(job_id, 0, trained_cid, ALICE_SALT)
    bob.reveal_model(job_id, 0, model_cid, BOB_SALT)
    with pytest.raises(NoCommitment):
        sponsor.reveal_model(job_id, 0, model_cid, BOB_SALT)
    assert [s["client"] for s in alice.submissions(job_id, 0)] == [ALICE, BOB]
    net.send(SPONSOR, b"\0\0\0\0", advance_time=2 * WINDOW)
    closed = bob.close_round(job_id, 0)
    result = notice(closed, "RoundClosed")
    assert [n.name for n in notices(closed)] == ["RoundClosed"]
    assert result.fields["jobId"] == job_id and list(result.fields["accepted"]) == [True, False]
    assert [c.lower() for c in result.fields["paid"]] == [ALICE]
    paid = vouchers(closed)
    assert ALICE in {v.destination for v in paid} <= {ALICE, SPONSOR}  # reward (and refund)
    assert sum(v.value for v in paid) == 1000 and all(v.erc20_transfer() is None for v in paid)
    assert alice.job(job_id)["status"] == "finished"
    evaluation = alice.evaluate(trained_cid, shard_cid, "accuracy")
    assert evaluation.fields["score"] == result.fields["scores"][0]
    assert alice.fetch_blob(trained_cid) == trained


def test_the_docs_example_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    text = (Path(__file__).parents[1] / "docs" / "client-sdk.md").read_text(encoding="utf-8")
    (example,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    exec(compile(example, "docs/client-sdk.md", "exec"), {})
    printed = capsys.readouterr().out
    assert "insufficient_balance" in printed and "1000000000000000000" in printed


def test_an_upload_cut_off_midway_is_resumed_not_refused(net: MachineTransport[Result]) -> None:
    """The DApp refuses a second beginBlob while an upload is unfinished (for a day): an
    upload whose client died midway carries on from where the DApp is."""
    alice = Client(net, ALICE)
    data = bytes(range(256)) * 700  # 179,200 bytes: three chunks
    cid, payloads = upload_inputs(data)
    for payload in payloads[:2]:  # beginBlob and the first chunk, then the client dies
        alice.send(payload)
    with pytest.raises(UploadInProgress):  # starting over is refused
        alice.send(payloads[0])
    remaining = alice.upload_remaining(data)[1]
    assert remaining == payloads[2:]  # only the chunks the DApp has not got
    assert alice.upload(data) == cid
    assert alice.fetch_blob(cid) == data
    assert alice.upload_remaining(data) == (cid, [])  # stored: nothing more to send
