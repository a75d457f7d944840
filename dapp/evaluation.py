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
import numpy.typing as npt
import onnxruntime as ort
from onnx import ModelProto, TensorProto, helper
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from deml_protocol.errors import (
    ModelInvalid,
    ModelOutputInvalid,
    ModelRunFailed,
    ShardModelMismatch,
)

from .metrics import SCORE_MIN, Metric, score_predictions
from .onnx_checks import ParsedModel, check_same_graph, check_weights_match, parse_model
from .records import Score
from .shards import Shard
from .work_budget import ROWS_DIM, check_memory_budget, check_work_budget, graph_costs

__all__ = ["Evaluation", "Scorer", "evaluate", "session_options"]


_ORT_ERRORS: Final = (
    ort_state.Fail,
    ort_state.InvalidArgument,
    ort_state.RuntimeException,
    ort_state.InvalidGraph,
    ort_state.InvalidProtobuf,
    ort_state.NotImplemented,
    ort_state.EPFail,
)
_LOG_ERRORS_ONLY: Final = 3


@dataclass(frozen=True, slots=True)
class Evaluation:
    """``score`` decides money (see ``dapp.metrics``); ``value`` is the float metric."""

    score: Score
    metric: Metric
    rows: int
    params: int
    value: float
    has_non_finite_outputs: bool = False


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


def _template(graph: ParsedModel) -> ModelProto:
    """The graph with float32 initializers turned into inputs (int64 ones stay constants).

    The batch dimension of input and output is renamed to one symbol, so shape inference
    can tell which dimension of every tensor counts rows.
    """
    source = graph.graph
    template = ModelProto(ir_version=source.ir_version)
    template.opset_import.extend(source.opset_import)
    body = template.graph
    body.name = "deml-template"
    body.node.extend(source.graph.node)
    body.input.extend(source.graph.input)
    body.input.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, list(array.shape))
        for name, array in graph.weights.items()
    )
    body.output.extend(source.graph.output)
    body.value_info.extend(source.graph.value_info)
    body.initializer.extend(t for t in source.graph.initializer if t.name in graph.constants)
    body.input[0].type.tensor_type.shape.dim[0].dim_param = ROWS_DIM
    output_rows = body.output[0].type.tensor_type.shape.dim[0]
    if not output_rows.HasField("dim_value"):
        output_rows.dim_param = ROWS_DIM
    return template


@dataclass(frozen=True, slots=True, eq=False)
class Scorer:
    """A job's graph compiled once; scores any model that passed ``check_same_graph``."""

    graph: ParsedModel
    session: ort.InferenceSession
    #: Most values per shard row of any tensor: ``check_memory_budget(rows, row_elements)``.
    row_elements: int
    #: The graph's cost per shard row: ``check_work_budget(rows, row_cost)``.
    row_cost: int

    @classmethod
    def compile(cls, graph: ParsedModel, *, max_rows: int | None = None) -> Scorer:
        """Check the graph's shapes and build its session: once per job graph.

        With ``max_rows``, the work and memory budgets for that many rows are checked after
        shape inference, before ONNX Runtime builds anything.
        """
        template = _template(graph)
        row_elements, row_cost = graph_costs(template)
        row_elements = max(row_elements, graph.n_features)
        if max_rows is not None:
            check_work_budget(max_rows, row_cost)
            check_memory_budget(max_rows, row_elements)
        try:
            session = ort.InferenceSession(
                template.SerializeToString(deterministic=True),
                session_options(),
                providers=["CPUExecutionProvider"],
            )
        except _ORT_ERRORS as exc:
            raise ModelInvalid(f"ONNX Runtime cannot load the graph: {exc}") from exc
        return cls(graph, session, row_elements, row_cost)

    def score(self, model: ParsedModel, shard: Shard, metric: Metric) -> Evaluation:
        """One batch inference over the whole shard, then the metric."""
        check_weights_match(self.graph, model)
        check_work_budget(shard.rows, self.row_cost)
        check_memory_budget(shard.rows, self.row_elements)
        if shard.X.shape[1] != self.graph.n_features:
            raise ShardModelMismatch(
                f"shard has {shard.X.shape[1]} features; the model takes {self.graph.n_features}"
            )
        feeds: dict[str, npt.NDArray[Any]] = {self.graph.input_name: shard.X, **model.weights}
        try:
            output = self.session.run([self.graph.output_name], feeds)[0]
        except _ORT_ERRORS as exc:
            raise ModelRunFailed(f"ONNX Runtime failed on the shard: {exc}") from exc
        return _evaluation(np.asarray(output), shard, metric, self.graph.params)


def _evaluation(
    output: npt.NDArray[np.float32], shard: Shard, metric: Metric, params: int
) -> Evaluation:
    if output.ndim not in (1, 2) or output.shape[0] != shard.rows:
        raise ModelOutputInvalid(
            f"output shape {output.shape}; accepted: [{shard.rows}] or [{shard.rows}, k]"
        )
    columns = output.reshape(shard.rows, -1)
    if not np.isfinite(columns).all():
        return Evaluation(Score(SCORE_MIN), metric, shard.rows, params, float("nan"), True)
    if metric.is_classification:
        _check_classes(columns.shape[1], shard.y, metric)
        # riscv64 gives -5.96e-8 where x86_64 gives 0 for saturated sigmoids.
        np.clip(columns, 0.0, 1.0, out=columns)
        result = score_predictions(metric, columns, shard.y)
    else:
        if columns.shape[1] != 1:
            raise ModelOutputInvalid(
                f"{metric} needs one prediction per row; output has {columns.shape[1]} columns"
            )
        result = score_predictions(metric, columns[:, 0], shard.y)
    return Evaluation(Score(result.score), metric, shard.rows, params, result.value)


def _check_classes(columns: int, labels: npt.NDArray[Any], metric: Metric) -> None:
    """One output column is a binary P(y = 1) (two classes); C columns are C classes."""
    classes = max(columns, 2)
    if int(labels.max()) >= classes or (metric is Metric.ROC_AUC and columns > 2):
        raise ShardModelMismatch(
            f"labels reach {int(labels.max())}, the model outputs "
            f"{columns} column(s); {metric} needs every label below "
            f"{classes}" + (" and a binary model" if columns > 2 else "")
        )


def evaluate(
    model_bytes: bytes, shard: Shard, metric: Metric, *, scorer: Scorer | None = None
) -> Evaluation:
    """Validate and score a model that stands on its own (the ``evaluate`` input).

    Pass a ``scorer`` compiled from the same graph to skip session creation; the model is
    then checked against that graph instead of parsed on its own.
    """
    if scorer is None:
        model = parse_model(model_bytes)
        scorer = Scorer.compile(model, max_rows=shard.rows)
    else:
        model = check_same_graph(scorer.graph, model_bytes)
    return scorer.score(model, shard, metric)
