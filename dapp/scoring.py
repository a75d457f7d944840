"""Scoring stored models on stored shards: the ``evaluate`` input and the scorer cache.

Compiling an ONNX Runtime session is the costly part of a validation, so one
:class:`~dapp.evaluation.Scorer` per job graph is kept in ``ctx.scorers`` across inputs.
It is derived only from immutable blob bytes, so it is not state: a cached and a fresh
scorer give the same scores, and a rolled-back input can leave it behind harmlessly.
"""

from __future__ import annotations

from deml_protocol import notices

from .blobs import blob_bytes, canonical_cid
from .context import Context
from .evaluation import Evaluation, Scorer, evaluate
from .jobs import InvalidJobSpec, Job
from .metrics import Metric
from .onnx_checks import ParsedModel, check_same_graph, parse_model
from .shards import Shard, ShardTooLarge, load_shard


def scorer_for(ctx: Context, job: Job) -> Scorer:
    scorer = ctx.scorers.get(job.spec.model_cid)
    if scorer is None:
        scorer = Scorer.compile(parse_model(blob_bytes(ctx.state, job.spec.model_cid)))
        ctx.scorers[job.spec.model_cid] = scorer
    return scorer


def job_model(ctx: Context, job: Job, model_cid: str) -> ParsedModel:
    """A stored model checked against the job's graph (only weights may differ)."""
    return check_same_graph(scorer_for(ctx, job).graph, blob_bytes(ctx.state, model_cid))


def job_shard(ctx: Context, job: Job, data_cid: str) -> Shard:
    shard = load_shard(blob_bytes(ctx.state, data_cid), job.spec.metric)
    if shard.rows > job.spec.holdout_rows:
        raise ShardTooLarge(f"the shard has {shard.rows} rows; this job allows at most "
                            f"{job.spec.holdout_rows} (its work budget)")
    return shard


def score_on(ctx: Context, job: Job, model: ParsedModel, shard: Shard) -> Evaluation:
    return scorer_for(ctx, job).score(model, shard, job.spec.metric)


def handle_evaluate(ctx: Context, *, modelCid: str, dataCid: str, metric: str) -> None:  # noqa: N803
    """Anyone may have any stored model scored on any stored shard; the result is a notice."""
    try:
        metric_enum = Metric(metric)
    except ValueError:
        raise InvalidJobSpec(f"unknown metric {metric!r}; use one of "
                             f"{', '.join(m.value for m in Metric)}") from None
    model_cid, data_cid = canonical_cid(modelCid), canonical_cid(dataCid)
    shard = load_shard(blob_bytes(ctx.state, data_cid), metric_enum)
    result = evaluate(blob_bytes(ctx.state, model_cid), shard, metric_enum)
    ctx.notice(notices.EVALUATION.encode(model_cid, data_cid, metric_enum.value, result.score,
                                         result.rows))
