"""``make bench``: every benchmark, one after the other; each prints its own table."""

from __future__ import annotations

import runpy
import sys

BENCHMARKS = (
    "bench.cid_throughput",
    "bench.validation",
    "bench.work_budget",
    "bench.parse_bounds",
    "bench.dapp_inputs",
    "bench.fedavg_memory",
    "bench.close_round",
    "bench.state_scaling",
    "bench.node_restart",
)


def main() -> int:
    for name in BENCHMARKS:
        print(f"\n### {name}", flush=True)
        runpy.run_module(name, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
