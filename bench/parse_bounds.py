"""Parsing bounded before it runs: the worst admitted inputs against the costliest evaluation.

Run from the repository root::

    .venv/bin/python -m bench.parse_bounds [--repeats 5] [--attack-elements 100000]

Every step before the work budget (decoding a model, ONNX shape inference, reading a shard)
must cost little next to an evaluation the budget admits. This times, cold:

- the *reference*: the costliest honest evaluation of ``bench.work_budget``'s grid at its
  largest row count (MLP 30-256-256-2 on 4,000 rows: decode, compile, check, run, ROC AUC);
- the *worst admitted* inputs of each kind: a model at every parsing cap (int64 constants
  through 63 ``Add`` nodes into a ``Reshape``, once the data-propagation path), the largest
  model, the largest stored shard, the largest deflated shard (32 MiB of arrays);
- the *reproduced attacks*, now refused: the int64-constant model of issue 9 (a) and the
  zip extra-field bomb of (b), next to what the former path (``zipfile``/``np.load``; today's
  shape inference, without data propagation, with the int64 cap lifted) spends on them. The
  former model path runs at ``--attack-elements`` (issue 9 measured 1,000,000 with data
  propagation: 29 s and 4.6 GiB on this host; without it, 2 s).
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import time
from collections.abc import Callable

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from dapp import onnx_checks
from dapp.evaluation import Scorer
from dapp.metrics import Metric
from dapp.onnx_checks import check_same_graph, parse_model
from dapp.shards import MAX_SHARD_BYTES, load_shard
from deml_console import model_zoo
from deml_protocol.errors import Rejected
from tests.test_onnx_checks import int64_arithmetic_model

FEATURES = 30


def timed(call: Callable[[], object], repeats: int) -> tuple[float, str]:
    """(median seconds, outcome) of ``call``; outcome is ``ok`` or the rejection code."""
    samples, outcome = [], "ok"
    for _ in range(repeats):
        start = time.perf_counter()
        try:
            call()
        except Rejected as exc:
            outcome = exc.code
        samples.append(time.perf_counter() - start)
    return statistics.median(samples), outcome


def honest_shard(rows: int, *, compressed: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, FEATURES)).astype(np.float32)
    y = (X[:, 0] + rng.normal(0, 1, rows) > 0).astype(np.int64)
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, X=X, y=y)
    return buffer.getvalue()


def reference(repeats: int) -> float:
    job = model_zoo.mlp([FEATURES, 256, 256, 2], seed=0)
    data = honest_shard(4_000)

    def cold() -> None:
        shard = load_shard(data, Metric.ROC_AUC)
        scorer = Scorer.compile(parse_model(job), max_rows=shard.rows)
        scorer.score(check_same_graph(scorer.graph, job), shard, Metric.ROC_AUC)

    return timed(cold, repeats)[0]


def largest_model() -> bytes:
    """X @ W with W [30, 139,000]: 16 MiB of raw float32 weights, one node."""
    width = 139_000
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["out"])],
        "largest",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", width])],
        initializer=[numpy_helper.from_array(np.full((FEATURES, width), 0.01, np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    serialized: bytes = model.SerializeToString()
    return serialized


def check_model(model: bytes, rows: int = 1_000) -> Callable[[], object]:
    return lambda: Scorer.compile(parse_model(model), max_rows=rows)


def former_model_path(model: bytes) -> Callable[[], object]:
    """The path before the int64 cap: parsing with the cap lifted, then shape inference."""

    def run() -> object:
        cap = onnx_checks.MAX_INT64_ELEMENTS
        onnx_checks.MAX_INT64_ELEMENTS = 1 << 62  # type: ignore[misc]
        try:
            return check_model(model)()
        finally:
            onnx_checks.MAX_INT64_ELEMENTS = cap  # type: ignore[misc]

    return run


def extra_field_bomb() -> bytes:
    """Issue 9 (b): an honest shard plus directory entries carrying 64 KiB of empty extra
    records each, up to MAX_SHARD_BYTES (``zipfile`` parses each extra field quadratically)."""
    base = honest_shard(4)
    _, _, _, _, count, cd_size, cd_offset, _ = struct.unpack("<IHHHHIIH", base[-22:])
    local, directory = base[:cd_offset], bytearray(base[cd_offset : cd_offset + cd_size])
    extra = struct.pack("<HH", 0x9999, 0) * (65532 // 4)
    index = 0
    while True:
        name = f"z{index}".encode()
        entry = struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, 0, 0, 0,
            len(name), len(extra), 0, 0, 0, 0, 0,
        ) + name + extra  # fmt: skip
        if len(local) + len(directory) + len(entry) + 22 > MAX_SHARD_BYTES:
            break
        directory += entry
        index += 1
    total = count + index
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, total, total, len(directory), cd_offset, 0)
    return local + bytes(directory) + end


def former_shard_path(data: bytes) -> Callable[[], object]:
    """What the former ``load_shard`` ran first: ``np.load`` and its ``zipfile``."""

    def run() -> object:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return npz["X"], npz["y"]
        except (ValueError, OSError, KeyError) as exc:
            return exc

    return run


def deflated_at_bound() -> bytes:
    """32 MiB of arrays (the bound), deflated: the most inflating a shard may ask for."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 4, (1_000_000, 8)).astype(np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=X, y=np.zeros(1_000_000, np.int8))
    return buffer.getvalue()


def stored_at_bound() -> bytes:
    rows = (MAX_SHARD_BYTES - 4096) // (FEATURES * 4 + 8)
    return honest_shard(rows)


def rows(repeats: int, attack_elements: int) -> list[tuple[str, int, float, str, float | None]]:
    """(label, bytes, seconds, outcome, former path seconds or None)."""
    cap = onnx_checks.MAX_INT64_ELEMENTS
    attack, at_cap = int64_arithmetic_model(attack_elements), int64_arithmetic_model(cap)
    largest = largest_model()
    bomb, deflated, stored = extra_field_bomb(), deflated_at_bound(), stored_at_bound()
    honest = honest_shard(10_000)
    cases: list[tuple[str, bytes, Callable[[], object], Callable[[], object] | None]] = [
        (f"model: int64 [{attack_elements:,}] -> 63 Add -> Reshape (a)", attack,
         check_model(attack), former_model_path(attack)),
        (f"model: int64 [{cap}] (the cap) -> 63 Add -> Reshape", at_cap,
         check_model(at_cap), None),
        ("model: 16 MiB of raw weights (parse + compile to the budget check)", largest,
         check_model(largest), None),
        ("shard: zip extra-field bomb (b)", bomb,
         lambda: load_shard(bomb, Metric.ACCURACY), former_shard_path(bomb)),
        ("shard: 8 MiB stored (np.savez), the blob bound", stored,
         lambda: load_shard(stored, Metric.ACCURACY), former_shard_path(stored)),
        ("shard: 32 MiB of arrays deflated, the array bound", deflated,
         lambda: load_shard(deflated, Metric.ACCURACY), former_shard_path(deflated)),
        ("shard: honest 10,000 x 30 (np.savez)", honest,
         lambda: load_shard(honest, Metric.ACCURACY), former_shard_path(honest)),
    ]  # fmt: skip
    out = []
    for label, data, new, former in cases:
        seconds, outcome = timed(new, repeats)
        before = timed(former, 1 if data in (attack, bomb) else repeats)[0] if former else None
        out.append((label, len(data), seconds, outcome, before))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--attack-elements", type=int, default=100_000)
    args = parser.parse_args()
    ref = reference(args.repeats)
    print(f"reference: costliest honest evaluation (MLP 30-256-256-2, 4,000 rows, cold): "
          f"{ref * 1e3:.2f} ms")  # fmt: skip
    print("| input | bytes | now ms | outcome | x reference | former path ms |")
    print("|---|---|---|---|---|---|")
    for label, size, seconds, outcome, before in rows(args.repeats, args.attack_elements):
        former = f"{before * 1e3:,.1f}" if before is not None else "-"
        print(
            f"| {label} | {size:,} | {seconds * 1e3:.3f} | {outcome} | {seconds / ref:.2f} | "
            f"{former} |"
        )


if __name__ == "__main__":
    main()
