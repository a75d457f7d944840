"""The user flows of one account over any :class:`~deml_console.sdk.transport.Transport`.

Every method that sends an input returns its :class:`Outcome` once accepted and raises the
DApp's typed error (``deml_protocol.errors``, by its code) if rejected; queries return the
TypedDicts of ``deml_protocol.queries``.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from deml_protocol import addresses, inputs, queries
from deml_protocol.cid import verify_content
from deml_protocol.commitments import submission_commitment
from deml_protocol.queries import Query
from deml_protocol.uploads import CHUNK_BYTES, upload_inputs

from .results import Notice, Outcome, accepted, notice, reply
from .transport import BLOCK_SECONDS, Transport

R = TypeVar("R")


@dataclass(frozen=True)
class Client:
    transport: Transport
    account: str  # the address that signs (node) or is named as sender (simulated chain)

    # ---- sending -----------------------------------------------------------------------
    def send(self, payload: bytes, *, advance_time: int = BLOCK_SECONDS) -> Outcome:
        """Any input (``deml_protocol.inputs``), checked: a rejection raises its error."""
        return accepted(self.transport.send(self.account, payload, advance_time=advance_time))

    def deposit_ether(self, amount: int, call: bytes = b"") -> Outcome:
        return accepted(self.transport.deposit_ether(self.account, amount, call))

    def deposit_erc20(self, token: str, amount: int, call: bytes = b"") -> Outcome:
        return accepted(self.transport.deposit_erc20(token, self.account, amount, call))

    def withdraw_ether(self, amount: int) -> Outcome:
        return self.send(inputs.WITHDRAW_ETHER.encode(amount))

    def withdraw_erc20(self, token: str, amount: int) -> Outcome:
        return self.send(inputs.WITHDRAW_ERC20.encode(token, amount))

    def upload(self, data: bytes) -> str:
        """Store ``data`` in the DApp (beginBlob, then putChunk in order); its CID.

        Sends only :meth:`upload_remaining`. Block time moves 1 s per chunk on a simulated
        chain: an upload is a burst of inputs."""
        cid, payloads = self.upload_remaining(data)
        for payload in payloads:
            self.send(payload, advance_time=1)
        return cid

    def upload_remaining(self, data: bytes) -> tuple[str, list[bytes]]:
        """``(cid, the inputs still to send)`` to store ``data``: none if the DApp stores it
        (anyone's); if an upload of mine was cut off (a lost reply, Ctrl-C), the chunks from
        where the DApp is, since it refuses a second ``beginBlob`` until the first expires;
        otherwise all of them."""
        cid, payloads = upload_inputs(data)
        if self.ask(queries.BLOB, cid=cid)["status"] == "stored":
            return cid, []
        for unfinished in self.ask(queries.UPLOADS, uploader=self.account):
            if unfinished["cid"] == cid:
                return cid, [
                    inputs.PUT_CHUNK.encode(cid, offset, data[offset : offset + CHUNK_BYTES])
                    for offset in range(unfinished["received"], len(data), CHUNK_BYTES)
                ]
        return cid, payloads

    def create_job(self, spec: dict[str, Any], reward: int, *, token: str | None = None) -> int:
        """Post a job (``inputs.JOB_SPEC`` fields) with its reward deposited through a portal
        (ether, or ``token`` through the ERC20Portal); the new job's id, from JobCreated."""
        call = inputs.CREATE_JOB.encode(**spec)
        if token is None or token == addresses.ETHER:
            outcome = self.deposit_ether(reward, call)
        else:
            outcome = self.deposit_erc20(token, reward, call)
        return int(notice(outcome, "JobCreated").fields["jobId"])

    def commit(self, job_id: int, round_index: int, model_cid: str, salt: bytes) -> Outcome:
        """Seal a model for a round: only its commitment goes on chain now. Upload the model
        only after the commit window has closed, or a watcher can commit the same CID."""
        commitment = submission_commitment(model_cid, salt, self.account, job_id, round_index)
        return self.send(inputs.COMMIT_SUBMISSION.encode(job_id, round_index, commitment))

    def reveal_holdout(self, job_id: int, round_index: int, data_cid: str, salt: bytes) -> Outcome:
        return self.send(inputs.REVEAL_HOLDOUT.encode(job_id, round_index, data_cid, salt))

    def reveal_model(self, job_id: int, round_index: int, model_cid: str, salt: bytes) -> Outcome:
        return self.send(inputs.REVEAL_SUBMISSION.encode(job_id, round_index, model_cid, salt))

    def close_round(self, job_id: int, round_index: int) -> Outcome:
        """Close a round whose reveal window is over (anyone may). Its RoundClosed notice
        (``results.notice(outcome, "RoundClosed")``) has the scores and payouts, and its
        vouchers (``results.vouchers(outcome)``) pay them on the base layer."""
        return self.send(inputs.CLOSE_ROUND.encode(job_id, round_index))

    def evaluate(self, model_cid: str, data_cid: str, metric: str) -> Notice:
        outcome = self.send(inputs.EVALUATE.encode(model_cid, data_cid, metric))
        return notice(outcome, "Evaluation")

    def collect_blobs(self, cids: Sequence[str]) -> Outcome:
        return self.send(inputs.COLLECT_BLOBS.encode(list(cids)))

    # ---- reading -----------------------------------------------------------------------
    def ask(self, query: Query[R], **params: object) -> R:
        """A declared query, typed; a rejection (``not_found``, ...) raises its error."""
        return reply(self.transport.inspect(query.path(**params)), query)

    def jobs(self) -> list[queries.JobSummary]:
        return self.ask(queries.JOBS)

    def job(self, job_id: int) -> queries.JobReply:
        return self.ask(queries.JOB, job_id=job_id)

    def round(self, job_id: int, round_index: int) -> queries.RoundReply:
        return self.ask(queries.ROUND, job_id=job_id, round=round_index)

    def submissions(self, job_id: int, round_index: int) -> list[queries.SubmissionReply]:
        return self.round(job_id, round_index)["submissions"]

    def leaderboard(self, job_id: int) -> list[queries.LeaderboardEntry]:
        return self.ask(queries.LEADERBOARD, job_id=job_id)

    def balances(self, address: str | None = None) -> queries.BalancesReply:
        """In-app balances (rewards paid into the DApp, deposits) of ``address`` or mine."""
        return self.ask(queries.BALANCES, address=address or self.account)

    def fetch_blob(self, cid: str) -> bytes:
        """A stored blob's bytes, page by page over inspect, checked against ``cid``."""
        pages: list[bytes] = []
        offset: int | None = 0
        while offset is not None:
            page = self.ask(queries.BLOB_DATA, cid=cid, offset=offset)
            pages.append(base64.b64decode(page["data_base64"]))
            offset = page["next_offset"]
        data = b"".join(pages)
        verify_content(cid, data)
        return data
