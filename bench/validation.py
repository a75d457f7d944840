"""Whole validation of one submission against ONNX Runtime's bare ``session.run``.

Run from the repository root::

    .venv/bin/python -m bench.validation [--rows 10000] [--repeats 60]

For a logistic regression (30 features) and a 30-64-64-2 MLP on a 10,000-row shard it times,
as medians over interleaved repetitions (so drift and noise hit every column alike):

- ``bare run``: ``session.run`` of a session made from the submitted model's bytes, with the
  DApp's session options; the cost floor of scoring that model with ONNX Runtime at all;
- ``bare new+run``: the same, session creation included;
- ``our run``: ``session.run`` of the DApp's template session (weights fed as inputs);
- ``whole``: ``check_same_graph`` (decode, graph check, weights) + ``Scorer.score`` (run,
  clip, metric) with the job's graph compiled once, as in a round's reveals;
- ``whole cold``: the same plus decoding the job's model and compiling its session.

Times are medians; ratios are medians of per-round ratios (robust to load from other
processes on a shared host).

Target: ``whole`` <= 1.15 x ``bare run``. Loading the shard happens once per round, not per
submission, and is reported on its own.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from dapp.evaluation import Scorer, session_options
from dapp.metrics import Metric
from dapp.onnx_checks import check_same_graph, parse_model
from dapp.shards import Shard, load_shard
from deml_console import model_zoo

TARGET_RATIO = 1.15
METRICS = (Metric.ACCURACY, Metric.LOG_LOSS, Metric.ROC_AUC)
COLUMNS = ("bare run", "bare new+run", "our run", "whole", "whole cold")


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    job: bytes
    submission: bytes


def make_shard_bytes(rows: int, features: int = 30, seed: int = 0) -> bytes:
    """Separable-ish synthetic data, so scores are neither trivial nor random."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features)).astype(np.float32)
    y = (X[:, :3].sum(axis=1) + rng.normal(0, 0.5, rows) > 0).astype(np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, X=X, y=y)
    return buffer.getvalue()


def make_cases(seed: int = 1) -> list[Case]:
    rng = np.random.default_rng(seed)
    logistic = model_zoo.logistic_regression(np.zeros(30))
    mlp = model_zoo.mlp([30, 64, 64, 2], seed=0)
    return [
        Case(
            "logistic regression (30)",
            logistic,
            model_zoo.logistic_regression(rng.standard_normal(30), 0.1),
        ),
        Case(
            "MLP 30-64-64-2",
            mlp,
            model_zoo.with_weights(
                mlp, model_zoo.get_weights(model_zoo.mlp([30, 64, 64, 2], seed=seed))
            ),
        ),
    ]


def timers(case: Case, shard: Shard, metric: Metric) -> dict[str, Callable[[], object]]:
    """One zero-argument callable per column, all scoring the same submission."""
    options = session_options()
    bare = ort.InferenceSession(case.submission, options, providers=["CPUExecutionProvider"])
    job = parse_model(case.job)
    scorer = Scorer.compile(job)
    submission = check_same_graph(job, case.submission)
    feeds = {job.input_name: shard.X, **submission.weights}

    def bare_new_run() -> object:
        session = ort.InferenceSession(case.submission, options, providers=["CPUExecutionProvider"])
        return session.run(None, {"X": shard.X})

    def whole_cold() -> object:
        cold = Scorer.compile(parse_model(case.job))
        return cold.score(check_same_graph(cold.graph, case.submission), shard, metric)

    return {
        "bare run": lambda: bare.run(None, {"X": shard.X}),
        "bare new+run": bare_new_run,
        "our run": lambda: scorer.session.run([job.output_name], feeds),
        "whole": lambda: scorer.score(check_same_graph(job, case.submission), shard, metric),
        "whole cold": whole_cold,
    }


def sample(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per call and column; columns run round-robin, after one warm-up each, so a
    burst of load from other processes hits neighbouring samples of every column alike."""
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return samples


def paired_ratio(samples: dict[str, list[float]], top: str, bottom: str) -> float:
    """Median of per-round ratios: robust to load that drifts during the run."""
    return statistics.median(a / b for a, b in zip(samples[top], samples[bottom], strict=True))


def shard_load_seconds(data: bytes, repeats: int) -> float:
    loads = sample({"load": lambda: load_shard(data, Metric.ACCURACY)}, repeats)["load"]
    return statistics.median(loads)


def table(rows: int, repeats: int) -> list[str]:
    data = make_shard_bytes(rows)
    header = (
        f"| model | metric | {' | '.join(c + ' ms' for c in COLUMNS)} "
        "| whole / bare run | whole / our run |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for case in make_cases():
        for metric in METRICS:
            shard = load_shard(data, metric)
            samples = sample(timers(case, shard, metric), repeats)
            cells = " | ".join(f"{statistics.median(samples[c]) * 1e3:.3f}" for c in COLUMNS)
            lines.append(
                f"| {case.name} | {metric} | {cells} | "
                f"{paired_ratio(samples, 'whole', 'bare run'):.2f} | "
                f"{paired_ratio(samples, 'whole', 'our run'):.2f} |"
            )
    lines.append("")
    lines.append(
        f"shard load ({rows} rows x 30 float32, {len(data)} bytes .npz): "
        f"{shard_load_seconds(data, repeats) * 1e3:.3f} ms (once per round)"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    print(
        f"onnxruntime {ort.__version__}, numpy {np.__version__}; "
        f"{args.rows} rows, median of {args.repeats}; target whole <= {TARGET_RATIO} x bare"
    )
    for line in table(args.rows, args.repeats):
        print(line)


if __name__ == "__main__":
    main()
