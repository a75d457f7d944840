"""A job's parameters as posted: every rule a spec must pass before anything is escrowed.

The argument names are the ABI's (``deml_protocol.inputs.JOB_SPEC``). Checks run cheapest
first; the last one compiles the initial model's graph and checks that one evaluation of a
full shard fits the work and memory budgets, so a job that is accepted can always be scored.
"""

from __future__ import annotations

from typing import Final

from deml_protocol.errors import InvalidJobSpec

from .blobs import canonical_cid
from .context import Context
from .records import Amount, JobSpec
from .scoring import check_budgets, parse_metric
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
) -> JobSpec:
    """Check a spec as posted and return it as a record."""
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
    )


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise InvalidJobSpec(f"{name} is {value}; it must be between {low} and {high}")
