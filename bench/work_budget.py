"""Calibrate the work budget: how one evaluation's time grows with rows and parameters.

Run from the repository root::

    .venv/bin/python -m bench.work_budget [--repeats 5]

It times one *cold* evaluation (decode the job's model, compile its session, check the
submission, run, ROC AUC: the most expensive metric) for a grid of models and shard sizes on
this host, fits ``t = fixed + rows * (per_row + per_row_param * params)`` and scales it to the
Cartesi Machine with the factors below. The DApp's rule is
``rows * (params + ROW_OVERHEAD_PARAMS) <= WORK_BUDGET_ROW_PARAMS`` (``dapp.evaluation``);
this prints the values that keep the estimated emulator time under ``TARGET_SECONDS``.

Slowdown assumptions (``/work/shared/reference/riscv64.md``): qemu-user riscv64 ran the MLP's
GEMM ~650x slower than native x86_64 (ORT's scalar generic SGEMM against AVX2) and logistic
regression ~100x slower. The Cartesi emulator interprets every instruction where qemu
translates blocks to native code; we *assume* it is 5x slower than qemu. The estimate
applies the GEMM factor (650 x 5 = 3250) to all measured time, including Python and numpy
work that slows far less, so it errs on the safe side.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from dataclasses import dataclass

import numpy as np

from dapp import evaluation
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


@dataclass(frozen=True, slots=True)
class Point:
    label: str
    params: int
    rows: int
    seconds: float


GRID: tuple[tuple[str, list[int] | None, tuple[int, ...]], ...] = (
    ("logistic regression 30", None, (10_000, 30_000, 60_000)),
    ("MLP 30-64-64-2", [30, 64, 64, 2], (1_000, 10_000, 40_000)),
    ("MLP 30-256-256-2", [30, 256, 256, 2], (1_000, 4_000)),
    ("MLP 30-512-512-2", [30, 512, 512, 2], (500, 1_000)),
)


def shard(rows: int, seed: int = 0) -> Shard:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, 30)).astype(np.float32)
    y = (X[:, 0] + rng.normal(0, 1, rows) > 0).astype(np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, X=X, y=y)
    return load_shard(buffer.getvalue(), Metric.ROC_AUC)


def model_pair(sizes: list[int] | None) -> tuple[bytes, bytes]:
    if sizes is None:
        rng = np.random.default_rng(1)
        return (model_zoo.logistic_regression(np.zeros(30)),
                model_zoo.logistic_regression(rng.standard_normal(30)))
    job = model_zoo.mlp(sizes, seed=0)
    trained = model_zoo.get_weights(model_zoo.mlp(sizes, seed=1))
    return job, model_zoo.with_weights(job, trained)


def time_cold(job: bytes, submission: bytes, data: Shard, repeats: int) -> float:
    """Median seconds of the whole cold path a reveal input runs."""
    samples = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        scorer = Scorer.compile(parse_model(job))
        scorer.score(check_same_graph(scorer.graph, submission), data, Metric.ROC_AUC)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples[1:])


def measure(repeats: int) -> list[Point]:
    points = []
    for label, sizes, row_counts in GRID:
        job, submission = model_pair(sizes)
        params = parse_model(job).params
        for rows in row_counts:
            points.append(Point(label, params, rows,
                                time_cold(job, submission, shard(rows), repeats)))
    return points


def fit(points: list[Point]) -> tuple[float, float, float]:
    """Least squares for (fixed, per_row, per_row_param), in seconds; all kept >= 0."""
    design = np.array([[1.0, p.rows, p.rows * p.params] for p in points])
    times = np.array([p.seconds for p in points])
    weights = 1.0 / times  # relative error: small and large points count alike
    solution, *_ = np.linalg.lstsq(design * weights[:, None], times * weights, rcond=None)
    fixed, per_row, per_row_param = (max(float(v), 0.0) for v in solution)
    return fixed, per_row, per_row_param


def worst_case(points: list[Point], fixed: float) -> float:
    """Host seconds at the budget if every unit of work cost what the costliest point did."""
    per_unit = max((p.seconds - fixed) / (p.rows * (p.params + evaluation.ROW_OVERHEAD_PARAMS))
                   for p in points)
    return fixed + per_unit * evaluation.WORK_BUDGET_ROW_PARAMS


def report(points: list[Point]) -> list[str]:
    fixed, per_row, per_row_param = fit(points)
    lines = ["| model | params | rows | rows x params | host ms | model ms | "
             f"est. emulator s (x{SLOWDOWN}) |", "|---|---|---|---|---|---|---|"]
    for p in points:
        modelled = fixed + p.rows * (per_row + per_row_param * p.params)
        lines.append(f"| {p.label} | {p.params} | {p.rows} | {p.rows * p.params:.2e} | "
                     f"{p.seconds * 1e3:.2f} | {modelled * 1e3:.2f} | "
                     f"{p.seconds * SLOWDOWN:.1f} |")
    overhead = per_row / per_row_param
    budget = (TARGET_SECONDS / SLOWDOWN - fixed) / per_row_param
    lines += [
        "",
        f"fit: fixed {fixed * 1e3:.3f} ms, per row {per_row * 1e9:.1f} ns, "
        f"per row x param {per_row_param * 1e12:.2f} ps",
        f"row overhead = per_row / per_row_param = {overhead:.0f} parameter-equivalents",
        f"budget for {TARGET_SECONDS} s at x{SLOWDOWN}: rows x (params + overhead) <= "
        f"{budget:.3g}",
        f"in dapp.evaluation: WORK_BUDGET_ROW_PARAMS = {evaluation.WORK_BUDGET_ROW_PARAMS:.3g}, "
        f"ROW_OVERHEAD_PARAMS = {evaluation.ROW_OVERHEAD_PARAMS}",
        "at the budget, estimated emulator time = "
        f"{(fixed + evaluation.WORK_BUDGET_ROW_PARAMS * per_row_param) * SLOWDOWN:.1f} s "
        f"from the fit, {worst_case(points, fixed) * SLOWDOWN:.1f} s from the worst point "
        f"(deadline {ADVANCE_DEADLINE_SECONDS} s)",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for line in report(measure(args.repeats)):
        print(line)


if __name__ == "__main__":
    main()
