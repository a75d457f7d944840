"""A job's parameters as posted: every rule a spec must pass before anything is escrowed.

The argument names are the ABI's (``deml_protocol.inputs.JOB_SPEC``). Checks run cheapest
first; the last ones compile the initial model's graph and check that one evaluation of a
full shard fits the work and memory budgets, so a job that is accepted can always be scored,
and that the aggregation rule can take a round's worth of its models (``dapp.policies``).
"""

from __future__ import annotations

from typing import Final

from deml_protocol.errors import InvalidJobSpec

from . import policies
from .blobs import canonical_cid
from .context import Context
from .records import Amount, JobSpec
from .scoring import check_budgets, parse_metric, scorer_for
from .shards import MAX_SHARD_ROWS

__all__ = [
    "MAX_RECIPE_BYTES",
    "MAX_ROUNDS",
    "MAX_SUBMISSIONS_PER_ROUND",
    "MAX_WINDOW_S",
    "parse_spec",
]

MAX_ROUNDS: Final = 64
MAX_WINDOW_S: Final = 90 * 24 * 3600
MAX_SUBMISSIONS_PER_ROUND: Final = 256
MAX_RECIPE_BYTES: Final = 4096


def parse_spec(
    ctx: Context,
    *,
    modelCid: str,
    recipe: str,
    metric: str,
    holdoutRows: int,
    holdoutCommitments: list[bytes],
    commitSeconds: int,
    holdoutSeconds: int,
    revealSeconds: int,
    minGain: int,
    maxSubmissions: int,
    commitBond: int,
    payout: str,
    aggregation: str,
    trimPercent: int,
) -> JobSpec:
    """Check a spec as posted and return it as a record."""
    metric_enum = parse_metric(metric)
    policies.payout(payout)  # a policy this DApp has, or unknown_policy
    rule = policies.aggregation(aggregation)
    _check_sizes(
        rounds=len(holdoutCommitments),
        holdout_rows=holdoutRows,
        windows_s=(commitSeconds, holdoutSeconds, revealSeconds),
        max_submissions=maxSubmissions,
        recipe=recipe,
    )
    if len(set(holdoutCommitments)) != len(holdoutCommitments) or bytes(32) in holdoutCommitments:
        raise InvalidJobSpec("holdout commitments must be distinct and non-zero, one per round")
    model_cid = canonical_cid(modelCid)
    check_budgets(ctx, model_cid, holdoutRows)  # parses and compiles the graph: any flaw shows
    weights = scorer_for(ctx, model_cid).graph.weights
    rule.check(
        trim_percent=trimPercent,
        max_models=maxSubmissions,
        weight_bytes=sum(array.nbytes for array in weights.values()),
    )
    return JobSpec(
        model_cid=model_cid,
        recipe=recipe,
        metric=metric_enum,
        holdout_rows=holdoutRows,
        holdout_commitments=tuple(holdoutCommitments),
        commit_s=commitSeconds,
        holdout_s=holdoutSeconds,
        reveal_s=revealSeconds,
        min_gain=minGain,
        max_submissions=maxSubmissions,
        commit_bond=Amount(commitBond),
        payout=payout,
        aggregation=aggregation,
        trim_percent=trimPercent,
    )


def _check_sizes(
    *,
    rounds: int,
    holdout_rows: int,
    windows_s: tuple[int, int, int],
    max_submissions: int,
    recipe: str,
) -> None:
    _check_range("rounds (one holdout commitment each)", rounds, 1, MAX_ROUNDS)
    _check_range("holdoutRows", holdout_rows, 1, MAX_SHARD_ROWS)
    names = ("commitSeconds", "holdoutSeconds", "revealSeconds")
    for name, seconds in zip(names, windows_s, strict=True):
        _check_range(name, seconds, 1, MAX_WINDOW_S)
    _check_range("maxSubmissions", max_submissions, 1, MAX_SUBMISSIONS_PER_ROUND)
    if len(recipe.encode()) > MAX_RECIPE_BYTES:
        raise InvalidJobSpec(f"recipe is {len(recipe.encode())} bytes; at most {MAX_RECIPE_BYTES}")


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidJobSpec(f"{name} is {value}; it must be between {low} and {high}")
