"""Peak memory of FedAvg as the number of winners grows (streaming: it should stay flat).

Run: ``.venv/bin/python -m bench.fedavg_memory``. Allocations are traced with tracemalloc
(Python and numpy buffers), for a 30-512-512-2 MLP (~1.1 MB serialized).
"""

from __future__ import annotations

import tracemalloc

from dapp.fedavg import fedavg
from dapp.onnx_checks import parse_model
from deml_console import model_zoo


def main() -> None:
    base = model_zoo.mlp([30, 512, 512, 2], seed=0)
    submission = model_zoo.mlp([30, 512, 512, 2], seed=1)
    job = parse_model(base)
    print(f"model {len(submission) / 1e6:.2f} MB")
    print(f"{'winners':>8}{'peak MB':>10}{'peak / model':>14}")
    for winners in (1, 5, 20, 60):
        tracemalloc.start()
        fedavg(job, (submission for _ in range(winners)))
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"{winners:>8}{peak / 1e6:>10.2f}{peak / len(submission):>14.1f}")


if __name__ == "__main__":
    main()
