"""Training jobs: posting, the spec checks, and what inspect shows of them.

A job is posted atomically with its reward: ``createJob(spec…)`` as the ``execLayerData`` of
an EtherPortal or ERC20Portal deposit (the deposit is the reward), or
``createJobFromBalance(asset, amount, spec…)`` from the sponsor's in-app balance (asset = the
zero address for ether). Nothing stays escrowed unless the whole spec passes, since the input
is all-or-nothing: the initial model is a stored blob that parses as an allowed ONNX graph and
compiles, one evaluation of it on a full shard fits the work and memory budgets, windows and
per-round shard commitments are consistent, and the reward covers every round.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from deml_protocol import notices

from . import ledger, payouts
from .blobs import canonical_cid
from .context import Context
from .errors import BadArgument, Rejected
from .metrics import Metric
from .scoring import check_budgets, parse_metric, scorer_for, weights_fingerprint
from .shards import MAX_SHARD_ROWS
from .state import State

MAX_ROUNDS = 64
MAX_WINDOW_S = 90 * 24 * 3600
MAX_SUBMISSIONS_PER_ROUND = 256
MAX_RECIPE_BYTES = 4096


class DepositRequired(Rejected):
    code = "deposit_required"


class InvalidJobSpec(Rejected):
    code = "invalid_job_spec"


class NoSuchJob(Rejected):
    code = "no_such_job"


@dataclass(frozen=True, slots=True)
class JobSpec:
    model_cid: str
    recipe: str
    metric: Metric
    holdout_rows: int
    holdout_commitments: tuple[bytes, ...]
    commit_s: int
    holdout_s: int
    reveal_s: int
    min_gain: int
    max_submissions: int
    commit_bond: int

    @property
    def rounds(self) -> int:
        return len(self.holdout_commitments)


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    sponsor: str
    asset: str
    escrow: int
    spec: JobSpec
    created_ts: int
    created_input: int
    #: The round in progress, or ``spec.rounds`` once the job is finished.
    current_round: int
    global_model_cid: str
    #: Budget not yet paid out and not yet assigned to a round (remainders, unclaimed rounds).
    carried: int = 0
    paid: int = 0
    refunded: int = 0

    @property
    def is_finished(self) -> bool:
        return self.current_round >= self.spec.rounds


def handle_create_job(ctx: Context, **spec_args: Any) -> None:
    if ctx.deposit is None:
        raise DepositRequired(
            "send createJob as the execLayerData of an EtherPortal or "
            "ERC20Portal deposit (the deposit is the reward), or use "
            "createJobFromBalance"
        )
    _create(ctx, ctx.deposit.asset, ctx.deposit.amount, spec_args)


def handle_create_job_from_balance(
    ctx: Context, *, asset: str, amount: int, **spec_args: Any
) -> None:
    _create(ctx, asset.lower(), amount, spec_args)


def _create(ctx: Context, asset: str, amount: int, spec_args: dict[str, Any]) -> None:
    if amount <= 0:
        raise InvalidJobSpec("the reward must be positive")
    ledger.debit(ctx.state, asset, ctx.sender, amount)  # into escrow; first, as it is cheap
    spec = parse_spec(ctx, **spec_args)
    if amount < spec.rounds:
        raise InvalidJobSpec(
            f"a reward of {amount} cannot fund {spec.rounds} rounds; "
            "give at least one base unit per round"
        )
    job_id = ctx.state.counters.get("next_job_id", 1)
    ctx.state.counters["next_job_id"] = job_id + 1
    job = Job(
        job_id,
        ctx.sender,
        asset,
        amount,
        spec,
        ctx.meta.block_timestamp,
        ctx.meta.input_index,
        0,
        spec.model_cid,
    )
    open_round(ctx, job, 0, start_ts=ctx.meta.block_timestamp)
    initial = scorer_for(ctx, spec.model_cid).graph
    ctx.state.fingerprints[(job_id, weights_fingerprint(initial))] = "global"
    ctx.notice(
        notices.JOB_CREATED.encode(
            job_id, ctx.sender, asset, amount, spec.model_cid, spec.metric.value, spec.rounds
        )
    )


@dataclass(frozen=True, slots=True)
class Round:
    """One round's windows (block time, seconds) and outcome. Windows follow each other:
    commit [start, commit_end), holdout [commit_end, holdout_end), reveal until reveal_end;
    model reveals open early once the shard is revealed."""

    job_id: int
    index: int
    budget: int
    model_cid: str  # the global model at the start: the baseline
    start_ts: int
    commit_end_ts: int
    holdout_end_ts: int
    reveal_end_ts: int
    committers: tuple[str, ...] = ()  # in commit order
    holdout_cid: str | None = None
    baseline: int | None = None
    is_closed: bool = False
    new_model_cid: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    client: str
    commitment: bytes
    bond: int
    commit_input: int
    model_cid: str | None = None
    reveal_input: int | None = None
    score: int | None = None  # None until scored (or forever, without a shard)
    #: Same weights as a global model or an earlier reveal in the job: never paid or averaged.
    is_copy: bool = False


def open_round(ctx: Context, job: Job, index: int, *, start_ts: int) -> None:
    """Start round ``index`` at ``start_ts``; its budget takes what earlier rounds carried."""
    spec = job.spec
    budget = payouts.round_budgets(job.escrow, spec.rounds)[index] + job.carried
    commit_end = start_ts + spec.commit_s
    holdout_end = commit_end + spec.holdout_s
    ctx.state.rounds[(job.id, index)] = Round(
        job.id,
        index,
        budget,
        job.global_model_cid,
        start_ts,
        commit_end,
        holdout_end,
        holdout_end + spec.reveal_s,
    )
    ctx.state.jobs[job.id] = replace(job, current_round=index, carried=0)


def parse_spec(
    ctx: Context,
    *,
    modelCid: str,
    recipe: str,
    metric: str,  # noqa: N803
    holdoutRows: int,
    holdoutCommitments: list[bytes],
    commitSeconds: int,
    holdoutSeconds: int,
    revealSeconds: int,
    minGain: int,
    maxSubmissions: int,
    commitBond: int,
) -> JobSpec:
    """Check a spec as posted; the argument names are the ABI's."""
    metric_enum = parse_metric(metric)
    rounds = len(holdoutCommitments)
    _check_range("rounds (one holdout commitment each)", rounds, 1, MAX_ROUNDS)
    _check_range("holdoutRows", holdoutRows, 1, MAX_SHARD_ROWS)
    for name, seconds in (
        ("commitSeconds", commitSeconds),
        ("holdoutSeconds", holdoutSeconds),
        ("revealSeconds", revealSeconds),
    ):
        _check_range(name, seconds, 1, MAX_WINDOW_S)
    _check_range("maxSubmissions", maxSubmissions, 1, MAX_SUBMISSIONS_PER_ROUND)
    if len(recipe.encode()) > MAX_RECIPE_BYTES:
        raise InvalidJobSpec(f"recipe is {len(recipe.encode())} bytes; at most {MAX_RECIPE_BYTES}")
    if len(set(holdoutCommitments)) != rounds or bytes(32) in holdoutCommitments:
        raise InvalidJobSpec("holdout commitments must be distinct and non-zero, one per round")
    model_cid = canonical_cid(modelCid)
    check_budgets(ctx, model_cid, holdoutRows)  # parses and compiles the graph: any flaw shows
    return JobSpec(
        model_cid,
        recipe,
        metric_enum,
        holdoutRows,
        tuple(holdoutCommitments),
        commitSeconds,
        holdoutSeconds,
        revealSeconds,
        minGain,
        maxSubmissions,
        commitBond,
    )


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidJobSpec(f"{name} is {value}; it must be between {low} and {high}")


def get_job(state: State, job_id: int) -> Job:
    job = state.jobs.get(job_id)
    if job is None:
        raise NoSuchJob(f"there is no job {job_id}; inspect `jobs` lists them")
    return job


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "sponsor": job.sponsor,
        "asset": job.asset,
        "escrow": str(job.escrow),
        "metric": job.spec.metric.value,
        "rounds": job.spec.rounds,
        "current_round": job.current_round,
        "status": "finished" if job.is_finished else "open",
        "global_model_cid": job.global_model_cid,
    }


def job_detail(job: Job) -> dict[str, Any]:
    spec = job.spec
    return job_summary(job) | {
        "initial_model_cid": spec.model_cid,
        "recipe": spec.recipe,
        "holdout_rows": spec.holdout_rows,
        "holdout_commitments": ["0x" + c.hex() for c in spec.holdout_commitments],
        "commit_seconds": spec.commit_s,
        "holdout_seconds": spec.holdout_s,
        "reveal_seconds": spec.reveal_s,
        "min_gain": spec.min_gain,
        "max_submissions": spec.max_submissions,
        "commit_bond": str(spec.commit_bond),
        "created_ts": job.created_ts,
        "carried": str(job.carried),
        "paid": str(job.paid),
        "refunded": str(job.refunded),
    }


def parse_job_id(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise BadArgument(f"job id must be a number, got {text!r}")
    return int(text)
