"""A data owner's round, step by step: commit a model now, upload it once the commit window
has closed, reveal it once the shard is revealed (or its window is over).

The order is the point: a model uploaded while the commit window is open can be read by anyone
watching the chain, who can then commit the same CID and share the reward. So the upload waits
for ``commit_end_ts`` unless the user asks for ``--upload-early`` (and is warned). Each step
is recorded locally (``workspace.Submission``) before the next, so ``deml submit`` can be run
again, or later, and picks up where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import onnx

from deml_protocol.cid import compute_cid
from deml_protocol.commitments import submission_commitment
from deml_protocol.errors import GraphMismatch  # checked here first: the DApp's own code

from .assets import BalanceTooLow
from .output import Output
from .phases import (
    Clock,
    Phase,
    WindowNotOpen,
    describe_seconds,
    is_sealed,
    phase_of,
    wait_until,
)
from .sdk import Client
from .workspace import MissingSecrets, Submission, load_submission, save_submission

__all__ = ["GraphMismatch", "Step", "check_same_graph", "current_round", "submit_step", "upload"]


def _skeleton(model: bytes) -> bytes:
    """The model with every initializer's values dropped: its graph, opset and shapes."""
    proto = onnx.load_from_string(model)
    for tensor in proto.graph.initializer:
        bare = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims)
        tensor.CopyFrom(bare)
    proto.producer_name = proto.producer_version = ""
    skeleton: bytes = proto.graph.SerializeToString(deterministic=True)
    return skeleton + b"".join(o.SerializeToString() for o in proto.opset_import)


def check_same_graph(model: bytes, job_model: bytes) -> None:
    try:
        same = _skeleton(model) == _skeleton(job_model)
    except Exception as exc:  # noqa: BLE001  (onnx's DecodeError and friends: not a model)
        raise GraphMismatch(f"not an ONNX model ({type(exc).__name__})") from exc
    if not same:
        raise GraphMismatch(
            "the model's graph differs from the job's (nodes, initializer names, shapes or "
            "opset): train from the job's model (`deml train`) so only weights change"
        )


def upload(client: Client, data: bytes, out: Output, what: str) -> str:
    """Upload ``data`` in chunks with a progress bar; its CID (nothing sent if stored)."""
    cid, payloads = client.upload_remaining(data)  # resumes an upload that was cut off
    if not payloads:
        return cid
    with out.progress() as progress:
        task = progress.add_task(f"uploading {what} ({len(data)} bytes)", total=len(payloads))
        for payload in payloads:
            client.send(payload, advance_time=1)
            progress.advance(task)
    return cid


def current_round(job: Any, index: int | None = None) -> Any:
    """Round ``index`` of the job reply (default: its current round), if it has opened."""
    if index is None and job["status"] == "finished":
        raise WindowNotOpen(f"job {job['id']} is finished: all {job['rounds']} rounds are closed")
    wanted = job["current_round"] if index is None else index
    for rnd in job["opened_rounds"]:
        if rnd["round"] == wanted:
            return rnd
    raise WindowNotOpen(f"round {wanted} of job {job['id']} is not open (rounds: {job['rounds']})")


@dataclass(frozen=True)
class Step:
    """Who submits, where, and how patient: the same for every round of a job."""

    client: Client
    app: str
    clock: Clock
    mined: Clock  # the latest mined block's time: when the model may be uploaded
    out: Output
    is_waiting: bool = False
    is_upload_early: bool = False


def _record(step: Step, rnd: Any) -> tuple[Submission, bytes] | None:
    """The local record for this round, if the chain has its commitment (else it is stale)."""
    me = step.client.account.lower()
    found = load_submission(step.app, rnd["job"], me, rnd["round"])
    committed = [s for s in rnd["submissions"] if s["client"].lower() == me]
    on_chain = committed[0]["commitment"].lower().removeprefix("0x") if committed else None
    if committed and (found is None or found[0].commitment != on_chain):
        raise MissingSecrets(
            f"{me} committed in round {rnd['round']} from elsewhere: its model and salt are not "
            "in this DEML_HOME"
        )
    return found if committed else None


def _commit(step: Step, rnd: Any, model: bytes) -> Submission:
    now = step.clock()
    if phase_of(rnd, now) is not Phase.COMMIT:
        raise WindowNotOpen(
            f"the commit window of round {rnd['round']} closed "
            f"{describe_seconds(now - rnd['commit_end_ts'])} ago; the next round opens when "
            f"this one is closed (from {describe_seconds(rnd['reveal_end_ts'] - now)} on)"
        )
    salt, cid, me = os.urandom(32), compute_cid(model), step.client.account.lower()
    commitment = submission_commitment(cid, salt, me, rnd["job"], rnd["round"])
    record = Submission(rnd["job"], rnd["round"], me, cid, salt.hex(), commitment.hex())
    save_submission(step.app, record, model)  # before sending: never lose a salt
    step.client.commit(rnd["job"], rnd["round"], cid, salt)
    step.out.say(f"round {rnd['round']}: committed {cid} (kept locally until the reveal)")
    return record


def _check_bond(client: Client, job: Any) -> None:
    """A commitment takes the job's bond from my balance in the application: say so first."""
    bond = int(job["commit_bond"])
    if bond == 0:
        return
    balances = client.balances()
    is_ether = int(job["asset"], 16) == 0
    held = int(balances["ether"] if is_ether else balances["erc20"].get(job["asset"].lower(), 0))
    if held < bond:
        raise BalanceTooLow(
            f"a commitment to job {job['id']} takes a bond of {bond} (base units of "
            f"{'ether' if is_ether else job['asset']}); you hold {held} in the application: "
            "deposit first (`deml deposit`)"
        )


def submit_step(step: Step, job_id: int, model: bytes | None) -> Submission:
    """Advance this round's submission as far as the windows allow (all the way if
    ``step.is_waiting``). ``model`` is needed only to commit."""
    job = step.client.job(job_id)
    rnd = current_round(job)
    found = _record(step, rnd)
    if found is None:
        if model is None:
            raise MissingSecrets(f"nothing committed for round {rnd['round']}: give --model")
        check_same_graph(model, step.client.fetch_blob(rnd["model_cid"]))
        _check_bond(step.client, job)
        record, kept = _commit(step, rnd, model), model
    else:
        record, kept = found
        if model is not None and compute_cid(model) != record.model_cid:
            raise MissingSecrets(
                f"round {rnd['round']}: {record.model_cid} is committed already; a round takes "
                "one model per account"
            )
    if step.is_upload_early and not record.is_uploaded:
        step.out.warn(
            "uploading during the commit window: anyone watching can commit the same model "
            "and share your reward"
        )
        record = _uploaded(step, record, kept)
    return _reveal(step, rnd, record, kept)


def _uploaded(step: Step, record: Submission, model: bytes) -> Submission:
    upload(step.client, model, step.out, f"model {record.model_cid[:16]}…")
    record = replace(record, is_uploaded=True)
    save_submission(step.app, record)
    return record


def _reveal(step: Step, rnd: Any, record: Submission, model: bytes) -> Submission:
    if record.is_revealed:
        return record
    if not is_sealed(rnd, step.mined):  # a commitment could still enter the round
        if not step.is_waiting:
            return record
        wait_until(
            rnd["commit_end_ts"],
            clock=step.mined,
            out=step.out,
            label=f"round {rnd['round']}: the end of the commit window (a block past it)",
        )
    if step.clock() >= rnd["reveal_end_ts"]:  # nothing left to do: spend no upload on it
        raise WindowNotOpen(f"round {rnd['round']}: the reveal window has closed")
    if not record.is_uploaded:
        record = _uploaded(step, record, model)

    def shard_revealed() -> bool:
        return step.client.round(rnd["job"], rnd["round"])["holdout_cid"] is not None

    if step.clock() < rnd["holdout_end_ts"] and not shard_revealed():
        if not step.is_waiting:
            return record
        wait_until(
            rnd["holdout_end_ts"],
            clock=step.clock,
            out=step.out,
            ready=shard_revealed,
            label=f"round {rnd['round']}: the sponsor's shard",
        )
    if step.clock() >= rnd["reveal_end_ts"]:
        raise WindowNotOpen(f"round {rnd['round']}: the reveal window has closed")
    step.client.reveal_model(rnd["job"], rnd["round"], record.model_cid, bytes.fromhex(record.salt))
    record = replace(record, is_revealed=True)
    save_submission(step.app, record)
    step.out.say(f"round {rnd['round']}: revealed {record.model_cid}")
    return record
