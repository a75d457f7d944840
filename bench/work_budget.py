"""Calibrate the work budget: how one evaluation's time grows with rows and graph cost.

Run from the repository root::

    .venv/bin/python -m bench.work_budget [--repeats 5]

It times one *cold* evaluation (decode the job's model, compile its session, check the
submission, run, ROC AUC: the most expensive metric) for a grid of models and shard sizes on
this host, fits ``t = fixed + rows * (per_row + per_unit * row_cost)`` and scales it to the
Cartesi Machine with the factors below. ``row_cost`` is ``Scorer.row_cost``: the graph's
cost per shard row from shape inference (multiply-adds, values written, per-row loops). The
DApp's rule is ``rows * (row_cost + ROW_OVERHEAD) <= WORK_BUDGET`` (``dapp.work_budget``).

Next to honest models the grid holds *adversarial* graphs, each as costly per unit as its
structure allows: one weight reused by 63 MatMuls, long chains of Softmax, broadcasting Add
and Sigmoid, 31 wide tensors alive at once, outer-product broadcasts. (Structures whose cost
does not follow this model are refused outright: rank > 2, Softmax over the rows, unused
nodes.) For every model it prints the emulator time the
model's own cost per unit would give at the full budget: no structure may come near the
node's deadline. Each model is timed at two or three row counts; the slope between them is
its real cost per unit of work, the intercept its fixed cost (larger graphs compile longer).

Slowdown assumptions (``docs/machine.md``, "Measured on riscv64"): qemu-user riscv64 ran the MLP's
GEMM ~650x slower than native x86_64 (ORT's scalar generic SGEMM against AVX2) and logistic
regression ~100x slower. The Cartesi emulator interprets every instruction where qemu
translates blocks to native code; we *assume* it is 5x slower than qemu. The estimate
applies the GEMM factor (650 x 5 = 3250) to all measured time, including elementwise,
Python and numpy work that slows far less, so it errs on the safe side.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from onnx import NodeProto, TensorProto, helper, numpy_helper

from dapp import work_budget
from dapp.evaluation import Scorer
from dapp.metrics import Metric
from dapp.onnx_checks import check_same_graph, parse_model
from dapp.shards import Shard, load_shard
from deml_console import model_zoo

QEMU_SLOWDOWN_GEMM = 650
QEMU_SLOWDOWN_SCALAR = 100
CARTESI_OVER_QEMU = 5
SLOWDOWN = QEMU_SLOWDOWN_GEMM * CARTESI_OVER_QEMU
ADVANCE_DEADLINE_SECONDS = 180
#: One evaluation may take a third of the node's per-input deadline.
TARGET_SECONDS = 60
FEATURES = 30


@dataclass(frozen=True, slots=True)
class Point:
    label: str
    params: int
    row_cost: int
    rows: int
    seconds: float

    @property
    def work(self) -> int:
        return self.rows * (self.row_cost + work_budget.ROW_OVERHEAD)


Weights = dict[str, npt.NDArray[Any]]


def _model(nodes: list[NodeProto], weights: Weights, out: str, width: int) -> bytes:
    """X [N, 30] -> nodes -> ``out`` -> MatMul to one column: a binary P(y = 1) for ROC AUC."""
    nodes = [*nodes, helper.make_node("MatMul", [out, "Wout"], ["probability"])]
    weights["Wout"] = np.full((width, 1), 1.0 / width, dtype=np.float32)
    graph = helper.make_graph(
        nodes,
        "bench",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    serialized: bytes = model.SerializeToString()
    return serialized


def reused_matmul(count: int) -> bytes:
    """The review's attack: ``count`` MatMuls all reusing one 30x30 weight."""
    nodes = [
        helper.make_node("MatMul", ["X" if i == 0 else f"h{i}", "W"], [f"h{i + 1}"])
        for i in range(count)
    ]
    return _model(nodes, {"W": np.eye(FEATURES)}, f"h{count}", FEATURES)


def chain(op: str, width: int, count: int) -> bytes:
    """X @ W [30, width], then ``count`` nodes of ``op`` (Add: plus a [width] constant each)."""
    nodes = [helper.make_node("MatMul", ["X", "Win"], ["h0"])]
    weights: Weights = {"Win": np.full((FEATURES, width), 0.01)}
    for i in range(count):
        inputs = [f"h{i}"]
        if op == "Add":
            weights[f"c{i}"] = np.full(width, 1e-3)
            inputs.append(f"c{i}")
        nodes.append(helper.make_node(op, inputs, [f"h{i + 1}"]))
        if op == "Softmax":
            nodes[-1].attribute.append(helper.make_attribute("axis", 1))
    return _model(nodes, weights, f"h{count}", width)


def fan_out(width: int, branches: int) -> bytes:
    """``branches`` Relu copies of one wide tensor, all alive at once, summed by an Add chain."""
    nodes = [helper.make_node("MatMul", ["X", "Win"], ["h"])]
    nodes += [helper.make_node("Relu", ["h"], [f"b{i}"]) for i in range(branches)]
    nodes += [
        helper.make_node("Add", [f"s{i}" if i else "b0", f"b{i + 1}"], [f"s{i + 1}"])
        for i in range(branches - 1)
    ]
    return _model(nodes, {"Win": np.full((FEATURES, width), 0.01)}, f"s{branches - 1}", width)


def outer(width: int, branches: int) -> bytes:
    """``branches`` x (outer broadcast [N, 1] + [1, width], MatMul back to [N, 1]), summed."""
    nodes = [helper.make_node("MatMul", ["X", "Wc"], ["c"])]
    weights: Weights = {"Wc": np.full((FEATURES, 1), 0.01), "Z": np.full((width, 1), 1e-3)}
    for i in range(branches):
        weights[f"r{i}"] = np.full((1, width), 0.5)
        nodes += [
            helper.make_node("Add", ["c", f"r{i}"], [f"o{i}"]),
            helper.make_node("MatMul", [f"o{i}", "Z"], [f"m{i}"]),
        ]
    nodes += [
        helper.make_node("Add", [f"s{i}" if i else "m0", f"m{i + 1}"], [f"s{i + 1}"])
        for i in range(branches - 1)
    ]
    return _model(nodes, weights, f"s{branches - 1}", 1)


def mlp(sizes: list[int]) -> Callable[[], bytes]:
    return lambda: model_zoo.mlp(sizes, seed=0)


def logistic() -> bytes:
    return model_zoo.logistic_regression(np.random.default_rng(1).standard_normal(FEATURES))


#: (label, builder, row counts). Adversarial rows are chosen to stay within the budget.
GRID: tuple[tuple[str, Callable[[], bytes], tuple[int, ...]], ...] = (
    ("logistic regression 30", logistic, (10_000, 30_000, 60_000)),
    ("MLP 30-64-64-2", mlp([30, 64, 64, 2]), (1_000, 10_000, 25_000)),
    ("MLP 30-256-256-2", mlp([30, 256, 256, 2]), (1_000, 4_000)),
    ("MLP 30-512-512-2", mlp([30, 512, 512, 2]), (500, 1_000)),
    ("adv: 63 MatMul, one 30x30 W", lambda: reused_matmul(63), (500, 2_500)),
    ("adv: 62 Softmax [N,1]", lambda: chain("Softmax", 1, 62), (2_000, 7_000)),
    ("adv: 62 Add bcast [N,64]", lambda: chain("Add", 64, 62), (500, 2_000)),
    ("adv: 62 Softmax [N,1024]", lambda: chain("Softmax", 1024, 62), (50, 200)),
    ("adv: 62 Sigmoid [N,1024]", lambda: chain("Sigmoid", 1024, 62), (50, 200)),
    ("adv: 31 Relu [N,1024] alive at once", lambda: fan_out(1024, 31), (50, 200)),
    ("adv: 20 outer [N,1]+[1,1024]", lambda: outer(1024, 20), (100, 600)),
)


def shard(rows: int, seed: int = 0) -> Shard:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, FEATURES)).astype(np.float32)
    y = (X[:, 0] + rng.normal(0, 1, rows) > 0).astype(np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, X=X, y=y)
    return load_shard(buffer.getvalue(), Metric.ROC_AUC)


def time_cold(job: bytes, data: Shard, repeats: int) -> float:
    """Median seconds of the whole cold path a reveal input runs (the job's own weights)."""
    samples = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        scorer = Scorer.compile(parse_model(job))
        scorer.score(check_same_graph(scorer.graph, job), data, Metric.ROC_AUC)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples[1:])


def measure(repeats: int) -> list[Point]:
    points = []
    for label, build, row_counts in GRID:
        job = build()
        scorer = Scorer.compile(parse_model(job))
        for rows in row_counts:
            points.append(
                Point(
                    label,
                    scorer.graph.params,
                    scorer.row_cost,
                    rows,
                    time_cold(job, shard(rows), repeats),
                )
            )
    return points


def fit(points: list[Point]) -> tuple[float, float, float]:
    """Least squares for (fixed, per_row, per_unit), in seconds; all kept >= 0."""
    design = np.array([[1.0, p.rows, p.rows * p.row_cost] for p in points])
    times = np.array([p.seconds for p in points])
    weights = 1.0 / times  # relative error: small and large points count alike
    solution, *_ = np.linalg.lstsq(design * weights[:, None], times * weights, rcond=None)
    fixed, per_row, per_unit = (max(float(v), 0.0) for v in solution)
    return fixed, per_row, per_unit


def structure_fits(points: list[Point]) -> list[tuple[str, float, float]]:
    """Per model: (label, fixed s, s per unit of work) from its own row counts.

    The fixed part (decoding, shape inference, session creation) grows with the graph; the
    slope is what each unit of ``rows x (row_cost + ROW_OVERHEAD)`` really costs it.
    """
    fits = []
    for label in dict.fromkeys(p.label for p in points):
        mine = [p for p in points if p.label == label]
        slope, fixed = np.polyfit([p.work for p in mine], [p.seconds for p in mine], 1)
        fits.append((label, max(float(fixed), 0.0), max(float(slope), 0.0)))
    return fits


def at_budget(fixed: float, per_unit: float) -> float:
    """Estimated emulator seconds of one evaluation at the full work budget."""
    return (fixed + per_unit * work_budget.WORK_BUDGET) * SLOWDOWN


def tables(points: list[Point]) -> list[str]:
    lines = [
        "| model | params | row_cost | rows | rows x (row_cost + overhead) | host ms | "
        f"est. emulator s (x{SLOWDOWN}) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {p.label} | {p.params:,} | {p.row_cost:,} | {p.rows:,} | {p.work:.2e} | "
        f"{p.seconds * 1e3:.2f} | {p.seconds * SLOWDOWN:.1f} |"
        for p in points
    ]
    lines += [
        "",
        "| model | fixed ms | ps per unit | est. emulator s at the budget |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {label} | {fixed * 1e3:.2f} | {per_unit * 1e12:.1f} | "
        f"{at_budget(fixed, per_unit):.0f} |"
        for label, fixed, per_unit in structure_fits(points)
    ]
    return lines


def report(points: list[Point]) -> list[str]:
    fixed, per_row, per_unit = fit(points)
    worst = max(at_budget(f, u) for _, f, u in structure_fits(points))
    budget = (TARGET_SECONDS / SLOWDOWN - fixed) / per_unit
    return [
        *tables(points),
        "",
        f"fit over all points: fixed {fixed * 1e3:.3f} ms, per row {per_row * 1e9:.1f} ns, "
        f"per unit of row_cost {per_unit * 1e12:.2f} ps",
        f"budget for {TARGET_SECONDS} s at x{SLOWDOWN} from that fit: "
        f"rows x (row_cost + overhead) <= {budget:.3g}",
        f"in dapp.work_budget: WORK_BUDGET = {work_budget.WORK_BUDGET:.3g}, ROW_OVERHEAD = "
        f"{work_budget.ROW_OVERHEAD}, NODE_ROW_COST = {work_budget.NODE_ROW_COST}, "
        f"ELEMENT_COST = {work_budget.ELEMENT_COST}",
        "at the budget, estimated emulator time = "
        f"{at_budget(fixed, per_unit):.1f} s from the fit, {worst:.1f} s from the costliest "
        f"model (deadline {ADVANCE_DEADLINE_SECONDS} s)",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for line in report(measure(args.repeats)):
        print(line)


if __name__ == "__main__":
    main()
