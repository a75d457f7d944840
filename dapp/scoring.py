"""Scoring stored models on stored shards: the scorer cache and the ``evaluate`` input.

Compiling an ONNX Runtime session is the costly part of a validation, so one
:class:`~dapp.evaluation.Scorer` per graph (keyed by the CID of the model that defines it,
e.g. a job's initial model) is kept in ``ctx.scorers`` across inputs. It is derived only from
immutable blob bytes, so it is not state: a cached and a fresh scorer give the same scores,
and a rolled-back input can leave one behind harmlessly.
"""

from __future__ import annotations

import hashlib

import numpy as np

from deml_protocol import notices
from deml_protocol.errors import ShardTooLarge, UnknownMetric

from .blobs import blob_bytes, canonical_cid
from .context import Context
from .evaluation import Evaluation, Scorer, evaluate
from .metrics import Metric
from .onnx_checks import ParsedModel, check_same_graph, parse_model
from .shards import Shard, load_shard
from .work_budget import check_memory_budget, check_work_budget


def parse_metric(name: str) -> Metric:
    try:
        return Metric(name)
    except ValueError:
        raise UnknownMetric(
            f"unknown metric {name!r}; use one of {', '.join(m.value for m in Metric)}"
        ) from None


#: Sessions kept at once. Bounded because inputs that are later rejected can add entries too.
MAX_CACHED_SCORERS = 8


def scorer_for(ctx: Context, graph_cid: str) -> Scorer:
    scorer = ctx.scorers.get(graph_cid)
    if scorer is None:
        scorer = Scorer.compile(parse_model(blob_bytes(ctx.state, graph_cid)))
        while len(ctx.scorers) >= MAX_CACHED_SCORERS:
            ctx.scorers.pop(next(iter(ctx.scorers)))  # oldest first; affects speed, not scores
        ctx.scorers[graph_cid] = scorer
    return scorer


def weights_fingerprint(model: ParsedModel) -> bytes:
    """sha256 over the weight values in graph order: equal weights, equal fingerprint, however
    the file was serialized (and -0.0 counts as 0.0). Models share a graph here, so names and
    shapes are fixed."""
    digest = hashlib.sha256()
    for name, array in model.weights.items():
        digest.update(name.encode() + b"\0")
        digest.update((array + np.float32(0.0)).tobytes())  # -0.0 + 0.0 == +0.0: one spelling
    return digest.digest()


def check_budgets(ctx: Context, graph_cid: str, rows: int) -> None:
    """Before any shard exists: can one evaluation of ``rows`` rows run within bounds?"""
    scorer = scorer_for(ctx, graph_cid)
    check_work_budget(rows, scorer.row_cost)
    check_memory_budget(rows, scorer.row_elements)


def checked_model(ctx: Context, graph_cid: str, model_cid: str) -> ParsedModel:
    """A stored model checked against a graph (only weight values may differ)."""
    return check_same_graph(scorer_for(ctx, graph_cid).graph, blob_bytes(ctx.state, model_cid))


def stored_shard(ctx: Context, data_cid: str, metric: Metric, *, max_rows: int) -> Shard:
    shard = load_shard(blob_bytes(ctx.state, data_cid), metric)
    if shard.rows > max_rows:
        raise ShardTooLarge(
            f"the shard has {shard.rows} rows; at most {max_rows} allowed here "
            "(the job's holdoutRows, its work budget)"
        )
    return shard


def score(
    ctx: Context, graph_cid: str, model: ParsedModel, shard: Shard, metric: Metric
) -> Evaluation:
    return scorer_for(ctx, graph_cid).score(model, shard, metric)


def handle_evaluate(ctx: Context, *, modelCid: str, dataCid: str, metric: str) -> None:
    """Anyone may have any stored model scored on any stored shard; the result is a notice."""
    metric_enum = parse_metric(metric)
    model_cid, data_cid = canonical_cid(modelCid), canonical_cid(dataCid)
    shard = load_shard(blob_bytes(ctx.state, data_cid), metric_enum)
    result = evaluate(blob_bytes(ctx.state, model_cid), shard, metric_enum)
    ctx.notice(
        notices.EVALUATION.encode(model_cid, data_cid, metric_enum.value, result.score, result.rows)
    )
