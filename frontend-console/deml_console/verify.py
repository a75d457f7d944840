"""``deml verify JOB``: recompute a job's global models and check its notices on chain.

For each closed round: the ``RoundClosed`` notice says whose models were accepted (in the
order the DApp averaged them) and the new global model's CID. The check fetches each
accepted model by CID from the DApp (checked against the CID), recomputes FedAvg over them in
the job's initial graph (:mod:`deml_console.aggregation`), and compares the result's CID with
the notice's, and the notice with the DApp's own record of the round. Then the notice itself
is checked on the base layer: ``Application.validateOutput`` with the node's proof accepts it
only if it is in an outputs root the application's consensus has claimed.

A job whose aggregation is not FedAvg (a policy a newer DApp may offer) is reported as not
verifiable by this console version, never as ok.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from deml_protocol.cid import compute_cid
from deml_protocol.errors import BlobNotFound, NotFound

from .aggregation import fedavg
from .job_history import round_closed_outputs
from .node_outputs import NodeOutput, OutputReader
from .sdk import Client

__all__ = ["RoundCheck", "verify_job"]

#: Aggregation policies this console can recompute (a job reply without one is FedAvg).
VERIFIABLE_POLICIES = ("fedavg",)


@dataclass(frozen=True, slots=True)
class RoundCheck:
    round: int
    new_model_cid: str | None
    recomputed_cid: str | None
    aggregate: str  # "ok", "mismatch", "not verifiable: ...", "missing notice"
    notice_index: int | None
    on_chain: str  # "valid", "invalid", "not claimed yet", "no notice"

    @property
    def is_failure(self) -> bool:
        """A wrong aggregate, an invalid notice, or a closed round whose RoundClosed notice
        the node does not serve (a node must not pass `verify` by hiding its outputs)."""
        return self.aggregate in ("mismatch", "missing notice") or self.on_chain == "invalid"

    def data(self) -> dict[str, Any]:
        return asdict(self)


def aggregation_policy(job: Any) -> str:
    """The job's aggregation policy name, lowercase; FedAvg for DApps that have no choice."""
    for key in ("aggregation", "aggregation_policy", "policy"):
        if isinstance(job.get(key), str):
            return str(job[key]).lower()
    return "fedavg"


def _round_closed_notices(reader: OutputReader, job_id: int) -> dict[int, NodeOutput]:
    return {
        int(o.notice.fields["round"]): o
        for o in round_closed_outputs(reader)
        if o.notice is not None and int(o.notice.fields["jobId"]) == job_id
    }


def _recompute(client: Client, initial_model: bytes, rnd: Any, fields: dict[str, Any]) -> str:
    """The CID the round's new global model must have."""
    # The accepted models, in the order the DApp averaged them (its revealed order). Not
    # `paid`: payees need not be this round's winners (a last round nobody wins pays earlier
    # winners with a newer DApp).
    clients, flags = fields["clients"], fields["accepted"]
    winners = [str(c).lower() for c, is_accepted in zip(clients, flags, strict=True) if is_accepted]
    if not fields["holdoutRevealed"] or not winners:
        return str(rnd["model_cid"])  # no shard or no winner: the global model stays
    by_client = {s["client"].lower(): s["model_cid"] for s in rnd["submissions"]}
    models = (client.fetch_blob(str(by_client[address])) for address in winners)
    return compute_cid(fedavg(initial_model, models))


def _aggregate_check(
    client: Client, initial: bytes | str, rnd: Any, output: NodeOutput
) -> tuple[str | None, str]:
    assert output.notice is not None
    fields = output.notice.fields
    if isinstance(initial, str):  # the initial model could not be fetched: why
        return None, initial
    try:
        recomputed = _recompute(client, initial, rnd, fields)
    except (BlobNotFound, NotFound) as exc:  # collected since the round closed
        return None, f"not verifiable: a model is no longer stored ({exc})"
    claimed = str(fields["newModelCid"])
    agrees = recomputed == claimed and rnd["new_model_cid"] in (None, claimed)
    return recomputed, "ok" if agrees else "mismatch"


def _chain_check(reader: OutputReader, output: NodeOutput) -> str:
    if not reader.is_claimed(output):
        return "not claimed yet"
    return "valid" if reader.is_valid_on_chain(output) else "invalid"


def verify_job(client: Client, reader: OutputReader, job_id: int) -> list[RoundCheck]:
    """One :class:`RoundCheck` per closed round of ``job_id``, in round order."""
    job = client.job(job_id)
    policy = aggregation_policy(job)
    notices = _round_closed_notices(reader, job_id)
    initial: bytes | str
    try:
        initial = client.fetch_blob(job["initial_model_cid"])
    except (BlobNotFound, NotFound) as exc:
        initial = f"not verifiable: the job's initial model is no longer stored ({exc})"
    checks = []
    for rnd in job["opened_rounds"]:
        if not rnd["closed"]:
            continue
        output = notices.get(rnd["round"])
        if output is None:
            checks.append(
                RoundCheck(
                    rnd["round"], rnd["new_model_cid"], None, "missing notice", None, "no notice"
                )
            )
            continue
        if policy not in VERIFIABLE_POLICIES:
            recomputed, verdict = None, f"not verifiable by this console version ({policy})"
        else:
            recomputed, verdict = _aggregate_check(client, initial, rnd, output)
        assert output.notice is not None
        checks.append(
            RoundCheck(
                round=rnd["round"],
                new_model_cid=str(output.notice.fields["newModelCid"]),
                recomputed_cid=recomputed,
                aggregate=verdict,
                notice_index=output.index,
                on_chain=_chain_check(reader, output),
            )
        )
    return checks
