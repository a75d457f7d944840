"""``make riscv-memory``: the DApp's peak RSS in the worst case its limits admit.

What sizes the machine's RAM (``cartesi.toml``, docs/machine.md). One DApp, fresh, on x86_64
and under qemu in the riscv64 root, is filled to the blob quota (``DEML_TOTAL_QUOTA_BYTES``,
256 MiB by default: every stored blob lives in RAM) and then runs the inputs that reach the
limits: two closes (``bench/close_round.py``: the median of 64 models at the largest stack
the close budget admits, 51 MB; the median of 256 models, the most work a close may
do), then the MLP at the work budget on a 10,000-row shard (``dapp/work_budget.py``) and a
logistic regression on the largest shard (``dapp/shards.py``: 8 MiB stored, 32 MiB of
arrays once inflated). The inputs are recorded from an in-process DApp first (every one is
checked accepted there, and the filler blobs take exactly the room it reports free). Prints
each side's peak RSS (``VmHWM``; under qemu, qemu included) and the timed inputs' seconds.
"""

from __future__ import annotations

import io
import sys
import time
from typing import Any

import numpy as np

from bench.close_round import Case, widest_admitted
from bench.close_round import play as play_round
from dapp.job_spec import MAX_SUBMISSIONS_PER_ROUND
from dapp.shards import MAX_SHARD_ARRAY_BYTES
from deml_console.sdk import MachineTransport
from deml_console.sdk.results import raw_reply
from deml_protocol import inputs
from deml_protocol.metrics import Metric
from deml_protocol.uploads import upload_inputs
from devnet.guest_server import Result
from devnet.host_machine import HostMachine
from devnet.in_process import InProcessMachine

from .qemu_machine import IMAGE_ENV, QemuMachine, peak_rss_mib
from .root import ensure_root
from .scenarios import ROWS_AT_BUDGET, widest_mlp_within_budget

ENV = {k: IMAGE_ENV[k] for k in ("OMP_NUM_THREADS", "PYTHONDONTWRITEBYTECODE")}
FEATURES = 30
#: The timed inputs, in the order they are sent once the quota is full.
TIMED = (
    "median close, 64 models",
    "median close, 256 models",
    "MLP at the budget",
    "largest shard",
)

Log = list[tuple[dict[str, Any], bytes]]


def _sender(number: int) -> str:
    return "0x" + f"{number:040x}"


def close_cases() -> tuple[Case, Case]:
    """The largest stack a median close admits (64 models), and the most work (256)."""
    full = MAX_SUBMISSIONS_PER_ROUND
    return (
        Case("median", 64, widest_admitted("median", 64)),
        Case("median", full, widest_admitted("median", full)),
    )


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


def worst_case() -> tuple[Log, int]:
    """The inputs: two shards and two models, two rounds played up to their close, filler
    blobs to the total quota, then the two closes and the two evaluations. Returns them and
    the index of the first timed input (the rest are timed too, in :data:`TIMED` order)."""
    from deml_console.datasets import shard_bytes
    from deml_console.model_zoo import logistic_regression, mlp

    with InProcessMachine() as machine:
        net: MachineTransport[Result] = MachineTransport(machine)

        def upload(data: bytes, sender: str) -> str:
            cid, payloads = upload_inputs(data)
            for payload in payloads:
                _accepted(net.send(sender, payload), "an upload")
            return cid

        rng = np.random.default_rng(12)
        X = rng.normal(size=(ROWS_AT_BUDGET, FEATURES)).astype(np.float32)
        small = upload(shard_bytes(X, (X[:, 0] > 0).astype(np.int64)), _sender(1))
        width = widest_mlp_within_budget(FEATURES, ROWS_AT_BUDGET)
        mlp_cid = upload(mlp([FEATURES, width, width, 2], seed=5), _sender(1))
        big = largest_shard()
        features = int(np.load(io.BytesIO(big))["X"].shape[1])
        big_cid = upload(big, _sender(2))
        logistic_cid = upload(logistic_regression(np.ones(features) / features), _sender(2))
        closes = [play_round(net, case, job_id=job) for job, case in enumerate(close_cases(), 1)]
        number = 3
        while (room := raw_reply(net.inspect("storage"))["free_bytes"]) > 0:
            upload(np.random.default_rng(number).bytes(min(room, 32 * 2**20)), _sender(number))
            number += 1
        first = len(net.log)
        timed = [
            *((_sender(1), close) for close in closes),
            (_sender(1), inputs.EVALUATE.encode(mlp_cid, small, Metric.LOG_LOSS.value)),
            (_sender(2), inputs.EVALUATE.encode(logistic_cid, big_cid, Metric.ACCURACY.value)),
        ]
        for (sender, payload), label in zip(timed, TIMED, strict=True):
            _accepted(net.send(sender, payload), label)
        return net.log, first


def _accepted(result: Result, what: str) -> None:
    if result.status != "accepted":
        raise SystemExit(f"{what} was {result.status}: {result.reports!r}")


def run(
    machine: HostMachine | QemuMachine, log: Log, first: int
) -> tuple[list[float], list[float]]:
    """Peak RSS (MiB) with the quota full and after each timed input; each one's seconds."""
    machine.start()
    try:
        peaks: list[float] = []
        seconds = []
        for index, (meta, payload) in enumerate(log):
            if index == first:
                peaks.append(_rss(machine))
            started = time.monotonic()
            result = machine.advance(meta, payload)
            if index >= first:
                seconds.append(time.monotonic() - started)
                peaks.append(_rss(machine))
            if result.status != "accepted" and payload[:4] != b"\0\0\0\0":
                raise SystemExit(f"input {index} {result.status}: {result.reports!r}")
        return peaks, seconds
    finally:
        machine.stop()


def _rss(machine: HostMachine | QemuMachine) -> float:
    pid = machine.process.pid if machine.process is not None else None
    rss = peak_rss_mib(pid) if pid is not None else None
    if rss is None:
        raise SystemExit("no peak RSS: the DApp is gone")
    return rss


def main() -> int:
    log, first = worst_case()
    print(f"{len(log)} inputs recorded; timed: {', '.join(TIMED)}")
    for case in close_cases():
        stack = case.models * case.values * 4 / 2**20
        print(f"  {case.describe()}: stack {stack:.1f} MiB, close work {case.work:.3e}")
    root = ensure_root()
    log_path = root.parent / "riscv-memory-dapp.log"
    print(f"DApp logs in {log_path}", flush=True)
    with open(log_path, "wb") as dapp_log:
        sides: list[tuple[str, HostMachine | QemuMachine]] = [
            ("native", HostMachine(env=ENV, log=dapp_log, timeout=None)),
            ("qemu", QemuMachine(root, env=ENV, log=dapp_log)),
        ]
        for name, machine in sides:
            started = time.monotonic()
            peaks, seconds = run(machine, log, first)
            steps = ", ".join(
                f"{label} {took:.2f} s (peak {peak:.0f} MiB)"
                for label, took, peak in zip(TIMED, seconds, peaks[1:], strict=True)
            )
            print(
                f"{name}: peak RSS {peaks[0]:.0f} MiB with the quota filled; {steps} "
                f"({time.monotonic() - started:.0f} s in all)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
