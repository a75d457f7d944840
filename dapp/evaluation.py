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
from onnx import ModelProto, NodeProto, TensorProto, ValueInfoProto, helper, shape_inference
from onnx.checker import ValidationError
from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

from .errors import Rejected
from .metrics import SCORE_MIN, Metric, score_predictions
from .onnx_checks import ParsedModel, check_same_graph, check_weights_match, parse_model
from .shards import Shard

__all__ = [
    "ELEMENT_COST",
    "MAX_TENSOR_BYTES",
    "NODE_ROW_COST",
    "ROW_LOOP_OPERATORS",
    "ROW_OVERHEAD",
    "WORK_BUDGET",
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

#: Most ``rows x (row_cost + ROW_OVERHEAD)`` one evaluation may cost, in units of about one
#: float32 multiply-add. ``row_cost`` is the graph's cost per shard row from shape inference
#: (``Scorer.row_cost``). Calibrated by ``bench/work_budget.py`` on honest and adversarial
#: graphs: a unit costs at most ~23 ps on an x86_64 host; times 3,250 (qemu's 650x on GEMM x
#: an assumed 5x for the Cartesi interpreter over qemu) the costliest graph at the budget is
#: estimated near 40 s, under a third of the node's 180 s limit. E.g. a 10,000-row shard
#: allows an MLP up to 30-146-146-2.
WORK_BUDGET: Final = 500_000_000
#: Per-row cost that does not depend on the graph (reading X and the output, clipping, the
#: metric's sort), in the same units.
ROW_OVERHEAD: Final = 1_000
#: Cost per shard row of a node of ``ROW_LOOP_OPERATORS``: ONNX Runtime loops over the rows
#: in Softmax, in broadcasting binary operators and in Gemm/MatMul (measured 5-21 ns per row
#: and node, whatever the width). The other operators are flat loops over all values.
NODE_ROW_COST: Final = 1_000
ROW_LOOP_OPERATORS: Final = frozenset({"Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Softmax"})
#: Cost of one output value of any node, next to a Gemm/MatMul's multiply-adds: elementwise
#: kernels are memory-bound and run at ~0.1-0.7 ns per value against ~25 ps per multiply-add.
#: It also bounds the memory of all tensors together: at most ``4 * WORK_BUDGET /
#: ELEMENT_COST`` bytes (62.5 MB) even if every tensor of the graph were alive at once.
ELEMENT_COST: Final = 32
#: Largest single tensor (float32) an evaluation may create: ``rows x`` the widest tensor's
#: values per row, found by shape inference at compile time. ONNX Runtime holds a few such
#: tensors at once (input, output, one intermediate), next to the shard itself.
MAX_TENSOR_BYTES: Final = 32 * 1024 * 1024

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
_ROWS: Final = "deml_rows"
_PRODUCTS: Final = frozenset({"Gemm", "MatMul"})


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


def check_work_budget(rows: int, row_cost: int) -> None:
    """Bound one evaluation's cost before any inference runs (§6: no input stalls the node).

    ``row_cost`` is :attr:`Scorer.row_cost`: what one shard row costs the graph's nodes
    (multiply-adds, values written, per-node loops), found by shape inference, plus
    ``ROW_OVERHEAD`` for what every row costs outside the graph.
    """
    work = rows * (row_cost + ROW_OVERHEAD)
    if work > WORK_BUDGET:
        raise WorkBudgetExceeded(
            f"{rows} rows x ({row_cost} graph cost per row + {ROW_OVERHEAD} per row) = "
            f"{work}; one evaluation may cost at most {WORK_BUDGET} (fewer rows per shard, or "
            "a smaller model)"
        )


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
            f"tensor; at most {MAX_TENSOR_BYTES} (fewer rows per shard, or narrower layers)"
        )


def _per_row(info: ValueInfoProto) -> int:
    """Values per shard row of a tensor shaped ``[rows]``, ``[rows, k]`` or fixed (rank <= 2).

    Rank 3 and up is refused: dense models never need it, and it is where ONNX Runtime's
    cost stops following the values written (batched MatMul, broadcasting in small spans).
    """
    dims = list(info.type.tensor_type.shape.dim)
    if not info.type.tensor_type.HasField("shape") or not dims:
        raise ModelInvalid(
            f"tensor {info.name!r} has no inferable shape; use operators "
            "whose output shapes follow from the input's"
        )
    if len(dims) > 2:
        raise ModelInvalid(
            f"tensor {info.name!r} has {len(dims)} dimensions; accepted: "
            "[N] or [N, k] (and fixed tensors of rank 1 or 2)"
        )
    per_row = 1
    for index, dim in enumerate(dims):
        if dim.HasField("dim_value"):
            per_row *= dim.dim_value
        elif index != 0 or dim.dim_param != _ROWS:
            shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
            raise ModelInvalid(
                f"tensor {info.name!r} has shape {shape}; every tensor must keep "
                "the batch dimension first (Reshape: 0 copies it) and fix all "
                "others"
            )
    return per_row


def _inferred(template: ModelProto) -> ModelProto:
    try:
        inferred: ModelProto = shape_inference.infer_shapes(
            template, check_type=True, strict_mode=True, data_prop=True
        )
    except (shape_inference.InferenceError, ValidationError) as exc:
        raise ModelInvalid(f"the graph's shapes do not check out: {exc}") from exc
    return inferred


def _value_infos(inferred: ModelProto) -> dict[str, ValueInfoProto]:
    """Every tensor's inferred type by name: constants, inputs, intermediates, output."""
    graph = inferred.graph
    infos = {
        t.name: helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
        for t in graph.initializer
    }
    infos.update((info.name, info) for info in (*graph.input, *graph.value_info, *graph.output))
    return infos


def _inner_dim(node: NodeProto, infos: dict[str, ValueInfoProto]) -> int:
    """Multiply-adds per output value of a Gemm or MatMul: K, the dimension summed over."""
    info = infos.get(node.input[0]) if node.input else None
    dims = list(info.type.tensor_type.shape.dim) if info is not None else []
    transposed = node.op_type == "Gemm" and any(a.name == "transA" and a.i for a in node.attribute)
    dim = dims[0 if transposed else -1] if dims else None
    if dim is not None and dim.HasField("dim_value"):
        return int(dim.dim_value)
    if dim is not None and dim.dim_param == _ROWS:
        return 1  # summed over the rows: the (fixed) output's values count once per row
    raise ModelInvalid(
        f"{node.op_type} node with input {list(node.input)[:1]}: the summed "
        "dimension has no inferable size"
    )


def _check_softmax_axis(node: NodeProto, output: ValueInfoProto) -> None:
    """Softmax over the last axis only: over the rows it strides and costs ~3x per value."""
    rank = len(output.type.tensor_type.shape.dim)
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
    if axis not in (-1, rank - 1):
        raise ModelInvalid(
            f"Softmax over axis {axis} of a rank-{rank} tensor; accepted: the last axis (-1)"
        )


def _node_cost(node: NodeProto, infos: dict[str, ValueInfoProto]) -> int:
    """Cost per shard row of one node: each value written, multiply-adds, a per-row loop."""
    written = 0
    for name in node.output:
        info = infos.get(name)
        if info is None:
            raise ModelInvalid(f"{node.op_type} output {name!r} has no inferable shape")
        written += _per_row(info)
    if node.op_type == "Softmax":
        _check_softmax_axis(node, infos[node.output[0]])
    cost = ELEMENT_COST * written
    if node.op_type in ROW_LOOP_OPERATORS:
        cost += NODE_ROW_COST
    if node.op_type in _PRODUCTS:
        cost += written * _inner_dim(node, infos)
    return cost


def _graph_costs(template: ModelProto) -> tuple[int, int]:
    """(row_elements, row_cost) of a template, from ONNX shape inference.

    ``row_elements``: the most values per shard row any tensor holds (the memory budget).
    ``row_cost``: the sum of :func:`_node_cost` over all nodes (the work budget). A tensor
    without the rows dimension (computed from weights alone) is charged as if per row.
    """
    inferred = _inferred(template)
    infos = _value_infos(inferred)
    tensors = [*inferred.graph.value_info, *inferred.graph.output]
    row_elements = max([_per_row(info) for info in tensors] + [1])
    return row_elements, sum(_node_cost(node, infos) for node in inferred.graph.node)


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
        row_elements, row_cost = _graph_costs(template)
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
        return Evaluation(SCORE_MIN, metric, shard.rows, params, float("nan"), True)
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
    return Evaluation(result.score, metric, shard.rows, params, result.value)


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
