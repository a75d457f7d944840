"""The DApp process under a full marketplace round: time per input kind and memory.

Runs the real DApp (``python -m dapp``) behind the guest API server, plays one round of the
breast-cancer job (4 clients, logistic regression), and prints for each input kind the
median host time of an advance, plus the process's resident memory (VmRSS) and its peak
(VmHWM) at start-up and at the end. Host times are native x86_64: the emulator is ~100-650x
slower (docs/evaluation.md), which is why the per-input work is bounded.

Run: ``.venv/bin/python -m bench.dapp_inputs``
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from pathlib import Path

from deml_protocol import inputs
from demo.marketplace import WINDOW, Market
from devnet.host_machine import HostMachine
from tests.machine_support import ALICE, BOB, Driver

CLIENTS = [BOB, "0x" + "c0" * 20, "0x" + "d0" * 20, "0x" + "e0" * 20]


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


class TimedDriver(Driver):
    timings: dict[str, list[float]] = defaultdict(list)

    def send(self, sender: str, payload: bytes, *, advance_time: int = 12):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        result = super().send(sender, payload, advance_time=advance_time)
        self.timings[_kind(payload)].append((time.perf_counter() - started) * 1000)
        return result


def _kind(payload: bytes) -> str:
    for method in inputs.ALL_INPUTS:
        if payload[:4] == method.selector:
            return method.name
    return "deposit" if len(payload) >= 52 and payload[:4] != b"\0\0\0\0" else "wait"


def main() -> None:
    with HostMachine() as machine:
        assert machine.process is not None
        time.sleep(0.5)
        start_memory = memory_kib(machine.process.pid)
        driver = TimedDriver(machine)
        market = Market(driver, sponsor=ALICE, clients=CLIENTS)
        market.post(10**18, metric="log_loss")
        models = [market.train(i, market.initial_model) for i in range(3)]
        models.append(market.initial_model)
        for client, model in zip(CLIENTS, models, strict=True):
            market.commit(client, model, 0)
        driver.send(ALICE, b"\0\0\0\0", advance_time=WINDOW)
        market.reveal_holdout(0)
        for client, model in zip(CLIENTS, models, strict=True):
            market.reveal(client, model, 0)
        driver.send(ALICE, b"\0\0\0\0", advance_time=2 * WINDOW)
        driver.send(BOB, inputs.CLOSE_ROUND.encode(market.job_id, 0))
        end_memory = memory_kib(machine.process.pid)
    print(f"{'input':<22}{'count':>6}{'median ms':>12}{'max ms':>10}")
    for kind, times in sorted(TimedDriver.timings.items()):
        print(f"{kind:<22}{len(times):>6}{statistics.median(times):>12.2f}{max(times):>10.2f}")
    start, end = start_memory["VmRSS"] // 1024, end_memory["VmRSS"] // 1024
    peak = end_memory["VmHWM"] // 1024
    print(
        f"\nDApp memory at start: VmRSS {start} MiB; after the round: VmRSS {end} MiB, "
        f"peak {peak} MiB"
    )


if __name__ == "__main__":
    main()
