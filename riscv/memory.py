"""``make riscv-memory``: the DApp's peak RSS in the worst case its limits admit.

What sizes the machine's RAM (``cartesi.toml``, docs/machine.md). One DApp, fresh, on x86_64
and under qemu in the riscv64 root, is filled to the blob quota (``DEML_TOTAL_QUOTA_BYTES``,
256 MiB by default: every stored blob lives in RAM) and then runs the two evaluations that
reach the limits: the MLP at the work budget on a 10,000-row shard (``dapp/work_budget.py``)
and a logistic regression on the largest shard (``dapp/shards.py``: 8 MiB stored, 32 MiB of
arrays once inflated). Prints each side's peak RSS (``VmHWM``; under qemu, qemu included).
"""

from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dapp.config import BlobLimits
from dapp.shards import MAX_SHARD_ARRAY_BYTES
from deml_protocol import inputs
from deml_protocol.metrics import Metric
from deml_protocol.uploads import upload_inputs
from devnet.host_machine import HostMachine

from .qemu_machine import IMAGE_ENV, QemuMachine, peak_rss_mib
from .root import ensure_root
from .scenarios import APP, ROWS_AT_BUDGET, widest_mlp_within_budget

ENV = {k: IMAGE_ENV[k] for k in ("OMP_NUM_THREADS", "PYTHONDONTWRITEBYTECODE")}
FEATURES = 30


@dataclass
class Inputs:
    """Advance inputs (metadata, payload) with increasing index, block and time."""

    items: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)
    held: int = 0  # blob bytes the DApp holds once all are sent

    def send(self, payload: bytes, sender: str) -> None:
        index = len(self.items)
        meta = {
            "chain_id": 31337,
            "app_contract": APP,
            "msg_sender": sender,
            "block_number": 100 + index,
            "block_timestamp": 1_700_000_000 + 12 * index,
            "prev_randao": "0x" + "00" * 32,
            "input_index": index,
        }
        self.items.append((meta, payload))

    def upload(self, data: bytes, sender: str) -> str:
        cid, payloads = upload_inputs(data)
        for payload in payloads:
            self.send(payload, sender)
        self.held += len(data)
        return cid


def _sender(number: int) -> str:
    return "0x" + f"{number:040x}"


def largest_shard() -> bytes:
    """10,000 rows whose arrays take just under ``MAX_SHARD_ARRAY_BYTES``, compressed to a few
    MiB (savez_compressed), so the stored blob stays under the 8 MiB shard limit."""
    rows = ROWS_AT_BUDGET
    features = (MAX_SHARD_ARRAY_BYTES - 8 * rows) // (4 * rows) - 1
    rng = np.random.default_rng(7)
    X = rng.integers(-2, 3, size=(rows, features)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=X, y=y)
    return buffer.getvalue()


def worst_case() -> tuple[Inputs, int]:
    """The inputs: two shards, two models, filler blobs to the total quota, two evaluations.
    Returns them and the index of the first evaluation."""
    from deml_console.datasets import shard_bytes
    from deml_console.model_zoo import logistic_regression, mlp

    limits = BlobLimits()
    net = Inputs()
    rng = np.random.default_rng(12)
    X = rng.normal(size=(ROWS_AT_BUDGET, FEATURES)).astype(np.float32)
    small = net.upload(shard_bytes(X, (X[:, 0] > 0).astype(np.int64)), _sender(1))
    width = widest_mlp_within_budget(FEATURES, ROWS_AT_BUDGET)
    mlp_cid = net.upload(mlp([FEATURES, width, width, 2], seed=5), _sender(1))
    big = largest_shard()
    features = int(np.load(io.BytesIO(big))["X"].shape[1])
    big_cid = net.upload(big, _sender(2))
    logistic_cid = net.upload(logistic_regression(np.ones(features) / features), _sender(2))
    number = 3
    while (room := limits.total_quota_bytes - net.held) > 0:
        size = min(room, limits.max_blob_bytes)
        net.upload(np.random.default_rng(number).bytes(size), _sender(number))
        number += 1
    first = len(net.items)
    net.send(inputs.EVALUATE.encode(mlp_cid, small, Metric.LOG_LOSS.value), _sender(1))
    net.send(inputs.EVALUATE.encode(logistic_cid, big_cid, Metric.ACCURACY.value), _sender(2))
    return net, first


def run(
    machine: HostMachine | QemuMachine, net: Inputs, first: int
) -> tuple[float, float, list[float]]:
    """Peak RSS (MiB) after the uploads and after the evaluations; each evaluation's seconds."""
    machine.start()
    try:
        filled = 0.0
        seconds = []
        for index, (meta, payload) in enumerate(net.items):
            if index == first:
                filled = _rss(machine)
            started = time.monotonic()
            result = machine.advance(meta, payload)
            if index >= first:
                seconds.append(time.monotonic() - started)
            if result.status != "accepted":
                raise SystemExit(f"input {index} {result.status}: {result.reports!r}")
        return filled, _rss(machine), seconds
    finally:
        machine.stop()


def _rss(machine: HostMachine | QemuMachine) -> float:
    pid = machine.process.pid if machine.process is not None else None
    rss = peak_rss_mib(pid) if pid is not None else None
    if rss is None:
        raise SystemExit("no peak RSS: the DApp is gone")
    return rss


def main() -> int:
    net, first = worst_case()
    print(f"{len(net.items)} inputs; {net.held / 2**20:.1f} MiB of blobs held; 2 evaluations")
    root = ensure_root()
    log_path = root.parent / "riscv-memory-dapp.log"
    print(f"DApp logs in {log_path}", flush=True)
    with open(log_path, "wb") as log:
        sides: list[tuple[str, HostMachine | QemuMachine]] = [
            ("native", HostMachine(env=ENV, log=log, timeout=None)),
            ("qemu", QemuMachine(root, env=ENV, log=log)),
        ]
        for name, machine in sides:
            started = time.monotonic()
            filled, peak, seconds = run(machine, net, first)
            print(
                f"{name}: peak RSS {filled:.0f} MiB with the quota filled, {peak:.0f} MiB "
                f"after the evaluations; MLP at the budget {seconds[0]:.2f} s, largest shard "
                f"{seconds[1]:.2f} s ({time.monotonic() - started:.0f} s in all)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
