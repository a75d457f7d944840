"""Scoring a model on a held-out shard with ONNX Runtime, the same way on every validator.

A job's graph is compiled **once** into a :class:`Scorer`: an ONNX Runtime session of a
*template* of the graph in which every float32 initializer is declared as a graph input. A
submission's weights (checked by ``dapp.onnx_checks.check_same_graph``) are then fed to that
session as inputs, next to ``X``: no second decode of the submission, no session per
submission, and what runs is always the job's graph, never the submitter's bytes. The global
model, a submission and a standalone ``evaluate`` all take this one path, so a score never
depends on whether a session was cached.

Session options are fixed (``docs/evaluation.md``): one intra-op and one inter-op thread,
sequential execution, CPU provider only, graph optimisations off (``ORT_DISABLE_ALL``: the
kernels that run are exactly the graph's nodes, so an ONNX Runtime upgrade cannot change
scores by fusing differently; for the allowed operators the optimiser saves no run time,
it only makes session creation slower), no memory arena or memory patterns (memory goes back
to the machine after each run), errors-only logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import onnxruntime as ort
from onnx import ModelProto, TensorProto, helper
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from .errors import Rejected
from .metrics import SCORE_MIN, Metric, score_predictions
from .onnx_checks import ParsedModel, check_same_graph, check_weights_match, parse_model
from .shards import Shard

__all__ = [
    "WORK_BUDGET_ROW_PARAMS",
    "Evaluation",
    "ModelInvalid",
    "ModelOutputInvalid",
    "ModelRunFailed",
    "Scorer",
    "ShardModelMismatch",
    "WorkBudgetExceeded",
    "check_work_budget",
    "evaluate",
    "session_options",
]

#: Most ``rows x params`` one evaluation may cost; calibrated in ``bench/work_budget.py``
#: (host timings x an assumed emulator slowdown; see ``docs/evaluation.md``). 2e9 is a
#: 10,000-row shard on a ~200k-parameter MLP: ~60 s estimated in the Cartesi Machine,
#: a third of the node's 180 s per-input limit.
WORK_BUDGET_ROW_PARAMS: Final = 2_000_000_000

_ORT_ERRORS: Final = (ort_state.Fail, ort_state.InvalidArgument, ort_state.RuntimeException,
                      ort_state.InvalidGraph, ort_state.InvalidProtobuf,
                      ort_state.NotImplemented, ort_state.EPFail)
_LOG_ERRORS_ONLY: Final = 3


class WorkBudgetExceeded(Rejected):
    code = "work_budget_exceeded"


class ModelInvalid(Rejected):
    """ONNX Runtime refused the graph (e.g. shapes that do not chain)."""

    code = "model_invalid"


class ModelRunFailed(Rejected):
    code = "model_run_failed"


class ModelOutputInvalid(Rejected):
    """The output's shape does not fit the metric (e.g. ``[N, 3]`` for a regression)."""

    code = "model_output_invalid"


class ShardModelMismatch(Rejected):
    """The shard does not fit the model: feature count, or labels past the model's classes."""

    code = "shard_model_mismatch"


@dataclass(frozen=True, slots=True)
class Evaluation:
    """``score`` decides money (see ``dapp.metrics``); ``value`` is the float metric."""

    score: int
    metric: Metric
    rows: int
    params: int
    value: float
    has_non_finite_outputs: bool = False


def check_work_budget(rows: int, params: int) -> None:
    """Bound one evaluation's cost before any inference runs (§6: no input stalls the node)."""
    work = rows * max(params, 1)
    if work > WORK_BUDGET_ROW_PARAMS:
        raise WorkBudgetExceeded(
            f"{rows} rows x {params} parameters = {work}; one evaluation may cost at most "
            f"{WORK_BUDGET_ROW_PARAMS} (fewer rows per shard, or a smaller model)")


def session_options() -> ort.SessionOptions:
    """The one configuration every validator uses; see the module docstring for why."""
    ort.set_default_logger_severity(_LOG_ERRORS_ONLY)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    options.log_severity_level = _LOG_ERRORS_ONLY
    return options


def _template(graph: ParsedModel) -> bytes:
    """The graph with float32 initializers turned into inputs (int64 ones stay constants)."""
    source = graph.proto
    template = ModelProto(ir_version=source.ir_version)
    template.opset_import.extend(source.opset_import)
    body = template.graph
    body.name = "deml-template"
    body.node.extend(source.graph.node)
    body.input.extend(source.graph.input)
    body.input.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(array.shape))
                      for name, array in graph.weights.items())
    body.output.extend(source.graph.output)
    body.value_info.extend(source.graph.value_info)
    body.initializer.extend(t for t in source.graph.initializer if t.name in graph.constants)
    return template.SerializeToString(deterministic=True)


@dataclass(frozen=True, slots=True, eq=False)
class Scorer:
    """A job's graph compiled once; scores any model that passed ``check_same_graph``."""

    graph: ParsedModel
    session: Any  # ort.InferenceSession (untyped library)

    @classmethod
    def compile(cls, graph: ParsedModel) -> Scorer:
        try:
            session = ort.InferenceSession(_template(graph), session_options(),
                                           providers=["CPUExecutionProvider"])
        except _ORT_ERRORS as exc:
            raise ModelInvalid(f"ONNX Runtime cannot load the graph: {exc}") from exc
        return cls(graph, session)

    def score(self, model: ParsedModel, shard: Shard, metric: Metric) -> Evaluation:
        """One batch inference over the whole shard, then the metric."""
        check_weights_match(self.graph, model)
        check_work_budget(shard.rows, self.graph.params)
        if shard.X.shape[1] != self.graph.n_features:
            raise ShardModelMismatch(f"shard has {shard.X.shape[1]} features; the model "
                                     f"takes {self.graph.n_features}")
        feeds: dict[str, np.ndarray] = {self.graph.input_name: shard.X}
        feeds.update(model.weights)
        try:
            output = self.session.run([self.graph.output_name], feeds)[0]
        except _ORT_ERRORS as exc:
            raise ModelRunFailed(f"ONNX Runtime failed on the shard: {exc}") from exc
        return _evaluation(np.asarray(output), shard, metric, self.graph.params)


def _evaluation(output: np.ndarray, shard: Shard, metric: Metric, params: int) -> Evaluation:
    if output.ndim not in (1, 2) or output.shape[0] != shard.rows:
        raise ModelOutputInvalid(f"output shape {output.shape}; accepted: [{shard.rows}] or "
                                 f"[{shard.rows}, k]")
    columns = output.reshape(shard.rows, -1)
    if not np.isfinite(columns).all():
        return Evaluation(SCORE_MIN, metric, shard.rows, params, float("nan"), True)
    if metric.is_classification:
        _check_classes(columns.shape[1], shard.y, metric)
        # riscv64 gives -5.96e-8 where x86_64 gives 0 for saturated sigmoids.
        np.clip(columns, 0.0, 1.0, out=columns)
        result = score_predictions(metric, columns, shard.y)
    else:
        if columns.shape[1] != 1:
            raise ModelOutputInvalid(f"{metric} needs one prediction per row; output has "
                                     f"{columns.shape[1]} columns")
        result = score_predictions(metric, columns[:, 0], shard.y)
    return Evaluation(result.score, metric, shard.rows, params, result.value)


def _check_classes(columns: int, labels: np.ndarray, metric: Metric) -> None:
    """One output column is a binary P(y = 1) (two classes); C columns are C classes."""
    classes = max(columns, 2)
    if int(labels.max()) >= classes or (metric is Metric.ROC_AUC and columns > 2):
        raise ShardModelMismatch(f"labels reach {int(labels.max())}, the model outputs "
                                 f"{columns} column(s); {metric} needs every label below "
                                 f"{classes}" + (" and a binary model" if columns > 2 else ""))


def evaluate(model_bytes: bytes, shard: Shard, metric: Metric, *,
             scorer: Scorer | None = None) -> Evaluation:
    """Validate and score a model that stands on its own (the ``evaluate`` input).

    Pass a ``scorer`` compiled from the same graph to skip session creation; the model is
    then checked against that graph instead of parsed on its own.
    """
    if scorer is None:
        model = parse_model(model_bytes)
        check_work_budget(shard.rows, model.params)
        scorer = Scorer.compile(model)
    else:
        model = check_same_graph(scorer.graph, model_bytes)
    return scorer.score(model, shard, metric)
