"""``python -m demo.data DIR``: example data files for trying the console (the README's
quickstart and ``make demo``).

Writes scikit-learn's breast-cancer data (569 rows, 30 features, z-scored), shuffled with a
fixed seed, as ``.npz`` files (``X`` float32, ``y`` int64; what ``deml job create --data`` and
``deml train --data`` read):

- ``holdout.npz``: the sponsor's held-out rows, ``rounds`` x ``holdout_rows`` of them (the
  sponsor's job is split into one shard per round);
- ``alice.npz``, ``bob.npz``, ``carol.npz``: three data owners' private partitions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from deml_console.datasets import breast_cancer_federation

OWNERS = ("alice", "bob", "carol")


def write_example_data(directory: Path, *, rounds: int = 2, holdout_rows: int = 80) -> list[Path]:
    """The files above, in ``directory`` (created); their paths, holdout first."""
    federation = breast_cancer_federation(
        clients=len(OWNERS), rounds=rounds, holdout_rows=holdout_rows
    )
    directory.mkdir(parents=True, exist_ok=True)
    holdout = directory / "holdout.npz"
    np.savez(
        holdout,
        X=np.concatenate([X for X, _ in federation.holdouts]),
        y=np.concatenate([y for _, y in federation.holdouts]),
    )
    written = [holdout]
    for name, (X, y) in zip(OWNERS, federation.partitions, strict=True):
        path = directory / f"{name}.npz"
        np.savez(path, X=X, y=y)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.data", description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--holdout-rows", type=int, default=80)
    args = parser.parse_args(argv)
    for path in write_example_data(
        args.directory, rounds=args.rounds, holdout_rows=args.holdout_rows
    ):
        with np.load(path) as data:
            print(f"{path}: {len(data['y'])} rows, {data['X'].shape[1]} features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
