"""The work-budget model: what one evaluation of a graph may cost, known before it runs.

No input may stall the node, so every evaluation is bounded *before* ONNX Runtime runs:
ONNX shape inference gives every tensor's values per shard row, from which
:func:`graph_costs` derives the graph's cost per row (multiply-adds, values written, per-row
loops) and the widest tensor. :func:`check_work_budget` and :func:`check_memory_budget` then
bound ``rows x`` those. ``bench/work_budget.py`` calibrates the constants below against
honest and adversarial graphs; ``docs/evaluation.md`` §9 explains them.

A close runs no evaluation but is one input too: :func:`close_work` prices a full round's
copy check and aggregation in the same units, and :func:`check_close_budget` bounds it at
posting (``bench/close_round.py``, ``make riscv-memory``; docs/evaluation.md §9, "What a
close costs").
"""

from __future__ import annotations

from typing import Final

from onnx import ModelProto, NodeProto, ValueInfoProto, helper, shape_inference
from onnx.checker import ValidationError

from deml_protocol.errors import MemoryBudgetExceeded, ModelInvalid, WorkBudgetExceeded

__all__ = [
    "ELEMENT_COST",
    "MAX_TENSOR_BYTES",
    "NODE_ROW_COST",
    "ROWS_DIM",
    "ROW_LOOP_OPERATORS",
    "ROW_OVERHEAD",
    "WORK_BUDGET",
    "check_close_budget",
    "check_memory_budget",
    "check_work_budget",
    "close_work",
    "graph_costs",
]

#: Most ``rows x (row_cost + ROW_OVERHEAD)`` one evaluation may cost, in units of about one
#: float32 multiply-add. ``row_cost`` is the graph's cost per shard row from shape inference
#: (``Scorer.row_cost``). Calibrated by ``bench/work_budget.py`` on honest and adversarial
#: graphs: a unit costs at most ~23 ps on an x86_64 host; times 3,250 (qemu's 650x on GEMM x
#: an assumed 5x for the Cartesi interpreter over qemu) the costliest graph at the budget is
#: estimated near 40 s, under a third of the node's 180 s limit. E.g. a 10,000-row shard
#: allows an MLP up to 30-146-146-2. In machine cycles (docs/evaluation.md §9, "In machine
#: terms"): about 5.1 billion at the budget, against 9 billion allowed per evaluation.
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

#: What closing a round costs, in the same units, known at posting from ``maxSubmissions``
#: and the job's float weights (docs/evaluation.md §9, "What a close costs"). A close runs
#: no evaluation, but compares every pair of the round's revealed models (``dapp.copies``),
#: then decodes, checks and aggregates every accepted model and the new one. Calibrated
#: under qemu-user against the MLP at the work budget (one unit ~15 ns of qemu CPU time
#: there): a float weight per model 158 ns (FedAvg), 353 ns (median), 415 ns (trimmed mean
#: at 10%): each rule's ``VALUE_COST``, with ~1.4x of margin. ``make riscv-memory`` then timed
#: whole closes next to the evaluation at the budget: a pair of sketches costs ~4,000 units
#: and a model, whatever its size, ~1,000,000 (decoding it, and mostly its voucher: one
#: output posted to the rollup server, its records, its share of the notice).
COPY_PAIR_COST: Final = 5_000
CLOSE_MODEL_COST: Final = 1_200_000


#: The symbol a template gives the batch dimension, so shape inference can tell which
#: dimension of every tensor counts shard rows.
ROWS_DIM: Final = "deml_rows"


_PRODUCTS: Final = frozenset({"Gemm", "MatMul"})


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


def close_work(models: int, values: int, value_cost: int) -> int:
    """What closing a round of ``models`` revealed models costs, each of ``values`` float
    weights, aggregated at ``value_cost`` per weight and model: every pair compared for
    copies, every model (and the new one) decoded and checked, every weight aggregated."""
    pairs = models * (models - 1) // 2
    return pairs * COPY_PAIR_COST + (models + 1) * (CLOSE_MODEL_COST + values * value_cost)


def check_close_budget(rule: str, *, models: int, values: int, value_cost: int) -> None:
    """At posting: a close of a full round (``maxSubmissions`` models, all accepted) must fit
    the budget one evaluation has, since it is one input too."""
    work = close_work(models, values, value_cost)
    if work > WORK_BUDGET:
        raise WorkBudgetExceeded(
            f"closing a round of maxSubmissions {models} models of {values} weights costs "
            f"{work} with {rule} ({COPY_PAIR_COST} per pair compared for copies, "
            f"{CLOSE_MODEL_COST} per model, {value_cost} per weight and model); at most "
            f"{WORK_BUDGET}: lower maxSubmissions or use a smaller model"
        )


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
        elif index != 0 or dim.dim_param != ROWS_DIM:
            shape = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]
            raise ModelInvalid(
                f"tensor {info.name!r} has shape {shape}; every tensor must keep "
                "the batch dimension first (Reshape: 0 copies it) and fix all "
                "others"
            )
    return per_row


def _inferred(template: ModelProto) -> ModelProto:
    """ONNX shape inference, without data propagation: propagating int64 values through
    arithmetic costs one protobuf dimension per value and node, which nothing checked before
    bounds. A ``Reshape`` shape is read from its int64 initializer, which is all it needs."""
    try:
        inferred: ModelProto = shape_inference.infer_shapes(
            template, check_type=True, strict_mode=True, data_prop=False
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
    if dim is not None and dim.dim_param == ROWS_DIM:
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


def graph_costs(template: ModelProto) -> tuple[int, int]:
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
