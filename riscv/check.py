"""``make riscv-check``: the same inputs on x86_64 and on riscv64 must give the same outputs.

Every scenario (``riscv.scenarios``) is replayed into a fresh ``python -m dapp`` on the host
(``.venv``) and into a fresh one in the riscv64 root under qemu, through the same guest API
server; every status, notice, voucher and report must be byte-identical, and so must the
final ``state/digest``. The demo is also checked against what its node stored and claimed.
Prints wall-time per input kind (qemu against native), start-up, and each side's peak RSS.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from deml_protocol import queries
from devnet.contracts import decode_evm_advance
from devnet.host_machine import HostMachine
from devnet.replay import RecordedInput, ReplayReport, replay, summary

from .qemu_machine import IMAGE_ENV, QemuMachine, peak_rss_mib
from .raw_outputs import compare_raw_outputs
from .root import VERSIONS, ensure_root
from .scenarios import (
    Scenario,
    demo_scenario,
    kind_of,
    operator_material,
    operator_scenario,
    state_machine_scenarios,
)

#: Runs of the state machine to choose from, and how many to replay (each is a DApp start,
#: ~5 s under qemu).
STATE_MACHINE_EXAMPLES = int(os.environ.get("DEML_RISCV_STATE_MACHINE_EXAMPLES", "30"))
STATE_MACHINE_KEEP = int(os.environ.get("DEML_RISCV_STATE_MACHINE_KEEP", "6"))
#: The settings both sides run with (the image's, which fix ONNX Runtime's threads).
SHARED_ENV = {k: IMAGE_ENV[k] for k in ("OMP_NUM_THREADS", "PYTHONDONTWRITEBYTECODE")}


@dataclass
class Side:
    """One replay of one scenario on one machine."""

    report: ReplayReport
    start_seconds: float
    digest: str
    peak_rss_mib: float | None


@dataclass
class Totals:
    inputs: int = 0
    items: int = 0
    differences: list[str] = field(default_factory=list)
    seconds: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {"native": defaultdict(list), "qemu": defaultdict(list)}
    )
    starts: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    rss: dict[str, float] = field(default_factory=dict)


def run_side(
    machine: HostMachine | QemuMachine, recorded: list[RecordedInput], scenario: Scenario
) -> Side:
    started = time.monotonic()
    machine.start()
    try:
        digest_path = queries.STATE_DIGEST.path().encode()
        machine.inspect(digest_path)  # answered once the DApp is up: its start-up time
        start_seconds = time.monotonic() - started
        report = replay(recorded, machine, scenario.claims)
        digest = b"".join(machine.inspect(digest_path).reports).decode()
        pid = machine.process.pid if machine.process is not None else None
        rss = peak_rss_mib(pid) if pid is not None else None
    finally:
        machine.stop()
    return Side(report, start_seconds, json.loads(digest)["state_digest"], rss)


def check_scenario(scenario: Scenario, root: Path, totals: Totals, log: IO[bytes]) -> None:
    env = SHARED_ENV | dict(scenario.env)
    native = run_side(HostMachine(env=env, log=log, timeout=None), scenario.inputs, scenario)
    problems = [f"native against the node's record: {d}" for d in native.report.differences]
    problems += [
        f"native root after block {e.last_block} differs from the claim"
        for e in native.report.epochs
        if not e.agrees
    ]
    if any(result.status == "EXCEPTION" for result in native.report.results):
        problems.append("the DApp halted on x86_64 (see the DApp log)")
    # The native results become the record the riscv64 replay is held to.
    expected = [
        RecordedInput(entry.index, entry.block_number, entry.raw, result)
        for entry, result in zip(
            _not_exceptions(scenario.inputs), native.report.results, strict=False
        )
    ]
    qemu = run_side(QemuMachine(root, env=env, log=log), expected, scenario)
    problems += [f"riscv64 against x86_64: {d}" for d in qemu.report.differences]
    problems += [
        f"riscv64 root after block {e.last_block} differs from the claim"
        for e in qemu.report.epochs
        if not e.agrees
    ]
    if qemu.digest != native.digest:
        problems.append(f"state/digest: x86_64 {native.digest}, riscv64 {qemu.digest}")
    totals.inputs += qemu.report.inputs
    totals.items += qemu.report.items + 1  # + the digest
    totals.differences += [f"{scenario.name}: {p}" for p in problems]
    for side, name in ((native, "native"), (qemu, "qemu")):
        for entry, seconds in zip(expected, side.report.seconds, strict=False):
            meta, payload = decode_evm_advance(entry.raw)
            kind = scenario.labels.get(entry.index) or kind_of(meta["msg_sender"], payload)
            totals.seconds[name][kind].append(seconds)
        totals.starts[name].append(side.start_seconds)
        if side.peak_rss_mib is not None:
            totals.rss[name] = max(totals.rss.get(name, 0.0), side.peak_rss_mib)
    verdict = "identical" if not problems else f"{len(problems)} DIFFERENCES"
    print(
        f"  {scenario.name:<18} {qemu.report.inputs:>4} inputs, {qemu.report.items + 1:>5} "
        f"items: {verdict}; native {sum(native.report.seconds):6.1f} s, qemu "
        f"{sum(qemu.report.seconds):6.1f} s",
        flush=True,
    )
    if scenario.claims:
        for line in summary(qemu.report)[1:]:
            print(f"      riscv64 {line}")


def _not_exceptions(recorded: list[RecordedInput]) -> list[RecordedInput]:
    return [r for r in recorded if r.stored is None or r.stored.status != "EXCEPTION"]


def timing_table(totals: Totals) -> list[str]:
    native, qemu = totals.seconds["native"], totals.seconds["qemu"]
    lines = [
        f"  {'input kind':<26}{'count':>6}{'native median':>15}{'qemu median':>13}"
        f"{'native max':>12}{'qemu max':>10}{'ratio':>7}"
    ]
    for kind in sorted(qemu, key=lambda k: -sum(qemu[k])):
        n, q = native[kind], qemu[kind]
        ratio = sum(q) / sum(n) if sum(n) else float("nan")
        lines.append(
            f"  {kind:<26}{len(q):>6}{_ms(statistics.median(n)):>15}"
            f"{_ms(statistics.median(q)):>13}{_ms(max(n)):>12}{_ms(max(q)):>10}{ratio:>6.0f}x"
        )
    for name in ("native", "qemu"):
        starts = totals.starts[name]
        lines.append(f"  DApp start-up, {name}: median {statistics.median(starts):.2f} s")
    return lines


def root_versions(root: Path) -> str:
    """The Debian versions that matter for the outputs, next to the host's pins."""
    wanted = ("python3.13", "python3-numpy", "python3-onnxruntime", "python3-onnx")
    versions = dict(
        line.split(" ", 1) for line in (root / VERSIONS).read_text().splitlines() if " " in line
    )
    return ", ".join(f"{name} {versions.get(name, '?')}" for name in wanted)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main() -> int:
    started = time.monotonic()
    root = ensure_root()
    print(f"riscv64 root ready in {time.monotonic() - started:.1f} s: {root}", flush=True)
    print(f"  {root_versions(root)}")
    print("generating scenarios (the state machine, the demo on a devnet, every operator)...")
    generated = time.monotonic()
    # The state machine first: its runs are the same on every check only in a fresh process
    # (after the demo, hypothesis drew other runs).
    material = operator_material()
    builders: list[Callable[[], list[Scenario]]] = [
        lambda: state_machine_scenarios(STATE_MACHINE_EXAMPLES, STATE_MACHINE_KEEP),
        lambda: [demo_scenario()],
        lambda: [operator_scenario(material)],
    ]
    scenarios = [scenario for build in builders for scenario in build()]
    print(f"  {len(scenarios)} scenarios in {time.monotonic() - generated:.1f} s", flush=True)
    totals = Totals()
    log_path = root.parent / "riscv-check-dapp.log"
    print(f"replaying (x86_64 .venv, then riscv64 under qemu; DApp logs in {log_path})")
    with open(log_path, "wb") as log:
        for scenario in scenarios:
            check_scenario(scenario, root, totals, log)
    print("\nwall time per input, x86_64 (native) and riscv64 under qemu-user:")
    for line in timing_table(totals):
        print(line)
    print(
        "peak RSS of the DApp process: native "
        f"{totals.rss.get('native', float('nan')):.0f} MiB, qemu (qemu included) "
        f"{totals.rss.get('qemu', float('nan')):.0f} MiB"
    )
    print("\nraw ONNX Runtime outputs on the 10,000-row shard, x86_64 against riscv64:")
    for comparison in compare_raw_outputs(root, sys.executable, material):
        print(f"  {comparison}")
        if comparison.differing and not comparison.equal_when_clipped:
            totals.differences.append(f"raw outputs: {comparison}")
    print(f"\nriscv-check done in {time.monotonic() - started:.0f} s")
    if totals.differences:
        print(f"FAILED: {len(totals.differences)} differences")
        for line in totals.differences:
            print(f"  {line}")
        return 1
    print(f"OK: {totals.inputs} inputs, {totals.items} output items, all identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
