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
from onnx import ModelProto, TensorProto, ValueInfoProto, helper, shape_inference
from onnx.checker import ValidationError
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from .errors import Rejected
from .metrics import SCORE_MIN, Metric, score_predictions
from .onnx_checks import ParsedModel, check_same_graph, check_weights_match, parse_model
from .shards import Shard

__all__ = [
    "MAX_TENSOR_BYTES",
    "ROW_OVERHEAD_PARAMS",
    "WORK_BUDGET_ROW_PARAMS",
    "Evaluation",
    "MemoryBudgetExceeded",
    "ModelInvalid",
    "ModelOutputInvalid",
    "ModelRunFailed",
    "Scorer",
    "ShardModelMismatch",
    "WorkBudgetExceeded",
    "check_memory_budget",
    "check_work_budget",
    "evaluate",
    "session_options",
]

#: Most ``rows x (params + ROW_OVERHEAD_PARAMS)`` one evaluation may cost. Calibrated by
#: ``bench/work_budget.py``: ~29-32 ps per row x parameter on an x86_64 host, times 3,250
#: (qemu's 650x on GEMM x an assumed 5x for the Cartesi interpreter over qemu) puts one
#: evaluation at the budget near 50 s, under a third of the node's 180 s limit. E.g. a
#: 10,000-row shard allows up to ~49,000 parameters (an MLP 30-200-200-2).
WORK_BUDGET_ROW_PARAMS: Final = 500_000_000
#: Per-row cost that does not grow with the model (reading X and the output, clipping, the
#: metric's sort): measured ~490 parameter-equivalents, rounded up.
ROW_OVERHEAD_PARAMS: Final = 1_000
#: Largest single tensor (float32) an evaluation may create: ``rows x`` the widest tensor's
#: values per row, found by shape inference at compile time. ONNX Runtime holds a few such
#: tensors at once (input, output, one intermediate), next to the shard itself.
MAX_TENSOR_BYTES: Final = 32 * 1024 * 1024

_ORT_ERRORS: Final = (ort_state.Fail, ort_state.InvalidArgument, ort_state.RuntimeException,
                      ort_state.InvalidGraph, ort_state.InvalidProtobuf,
                      ort_state.NotImplemented, ort_state.EPFail)
_LOG_ERRORS_ONLY: Final = 3
_ROWS: Final = "deml_rows"


class WorkBudgetExceeded(Rejected):
    code = "work_budget_exceeded"


class MemoryBudgetExceeded(Rejected):
    code = "memory_budget_exceeded"


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
    """Bound one evaluation's cost before any inference runs (§6: no input stalls the node).

    Cost model ``rows * (params + ROW_OVERHEAD_PARAMS)``: time grows with rows times
    parameters (the GEMMs), plus a per-row part that even a tiny model pays.
    """
    work = rows * (params + ROW_OVERHEAD_PARAMS)
    if work > WORK_BUDGET_ROW_PARAMS:
        raise WorkBudgetExceeded(
            f"{rows} rows x ({params} parameters + {ROW_OVERHEAD_PARAMS} per row) = {work}; "
            f"one evaluation may cost at most {WORK_BUDGET_ROW_PARAMS} (fewer rows per "
            "shard, or a smaller model)")


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


def check_memory_budget(rows: int, row_elements: int) -> None:
    """Bound the largest tensor an evaluation creates, so no input can exhaust the RAM."""
    tensor_bytes = rows * row_elements * 4
    if tensor_bytes > MAX_TENSOR_BYTES:
        raise MemoryBudgetExceeded(
            f"{rows} rows x {row_elements} values per row = {tensor_bytes} bytes in one "
            f"tensor; at most {MAX_TENSOR_BYTES} (fewer rows per shard, or narrower layers)")


def _per_row(info: ValueInfoProto) -> int:
    """Values per shard row of a tensor whose shape is ``[rows, k1, k2, ...]``, all k known."""
    dims = list(info.type.tensor_type.shape.dim)
    if not info.type.tensor_type.HasField("shape") or not dims:
        raise ModelInvalid(f"tensor {info.name!r} has no inferable shape; use operators "
                           "whose output shapes follow from the input's")
    per_row = 1
    for index, dim in enumerate(dims):
        if dim.HasField("dim_value"):
            per_row *= dim.dim_value
        elif index != 0 or dim.dim_param != _ROWS:
            shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
            raise ModelInvalid(f"tensor {info.name!r} has shape {shape}; every tensor must keep "
                               "the batch dimension first (Reshape: 0 copies it) and fix all "
                               "others")
    return per_row


def _row_elements(template: ModelProto) -> int:
    """The most values per shard row any tensor of the graph holds (ONNX shape inference)."""
    try:
        inferred = shape_inference.infer_shapes(template, check_type=True, strict_mode=True,
                                                 data_prop=True)
    except (shape_inference.InferenceError, ValidationError) as exc:
        raise ModelInvalid(f"the graph's shapes do not check out: {exc}") from exc
    tensors = [*inferred.graph.value_info, *inferred.graph.output]
    return max([_per_row(info) for info in tensors] + [1])


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
    body.input.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(array.shape))
                      for name, array in graph.weights.items())
    body.output.extend(source.graph.output)
    body.value_info.extend(source.graph.value_info)
    body.initializer.extend(t for t in source.graph.initializer if t.name in graph.constants)
    body.input[0].type.tensor_type.shape.dim[0].dim_param = _ROWS
    output_rows = body.output[0].type.tensor_type.shape.dim[0]
    if not output_rows.HasField("dim_value"):
        output_rows.dim_param = _ROWS
    return template


@dataclass(frozen=True, slots=True, eq=False)
class Scorer:
    """A job's graph compiled once; scores any model that passed ``check_same_graph``."""

    graph: ParsedModel
    session: ort.InferenceSession
    row_elements: int

    @classmethod
    def compile(cls, graph: ParsedModel) -> Scorer:
        """Check the graph's shapes and build its session: once per job graph."""
        template = _template(graph)
        row_elements = max(_row_elements(template), graph.n_features)
        try:
            session = ort.InferenceSession(template.SerializeToString(deterministic=True),
                                           session_options(),
                                           providers=["CPUExecutionProvider"])
        except _ORT_ERRORS as exc:
            raise ModelInvalid(f"ONNX Runtime cannot load the graph: {exc}") from exc
        return cls(graph, session, row_elements)

    def score(self, model: ParsedModel, shard: Shard, metric: Metric) -> Evaluation:
        """One batch inference over the whole shard, then the metric."""
        check_weights_match(self.graph, model)
        check_work_budget(shard.rows, self.graph.params)
        check_memory_budget(shard.rows, self.row_elements)
        if shard.X.shape[1] != self.graph.n_features:
            raise ShardModelMismatch(f"shard has {shard.X.shape[1]} features; the model "
                                     f"takes {self.graph.n_features}")
        feeds: dict[str, npt.NDArray[Any]] = {self.graph.input_name: shard.X, **model.weights}
        try:
            output = self.session.run([self.graph.output_name], feeds)[0]
        except _ORT_ERRORS as exc:
            raise ModelRunFailed(f"ONNX Runtime failed on the shard: {exc}") from exc
        return _evaluation(np.asarray(output), shard, metric, self.graph.params)


def _evaluation(output: npt.NDArray[np.float32], shard: Shard, metric: Metric,
                params: int) -> Evaluation:
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


def _check_classes(columns: int, labels: npt.NDArray[Any], metric: Metric) -> None:
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
