"""How fast is our pure-Python CID beside plain sha256? Run ``python -m bench.cid_throughput``.

Writes a 100 MB file to a temporary directory, then times (best of ``--repeat`` runs, file
in the page cache for all of them): ``cid_of_file`` in the v1 and v0 profiles, one
``hashlib.sha256`` pass over the same file, and GNU ``sha256sum``. The CID does one sha256
pass over the data plus a few hundred small node hashes, so it should track sha256 closely;
a large gap means per-byte Python work crept into the hot loop.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from deml_protocol.cid import cid_of_file

MB = 1_000_000


def _write_file(path: Path, size: int) -> None:
    """Pseudo-random content, so no layer can shortcut repeated data."""
    block = hashlib.sha256(b"deml bench").digest() * (MB // 32)
    with path.open("wb") as handle:
        for i in range(size // len(block)):
            handle.write(i.to_bytes(8, "big") + block[8:])
        handle.write(block[: size % len(block)])


def _best_seconds(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _hashlib_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(1 << 20):
            digest.update(piece)
    return digest.hexdigest()


def _sha256sum(path: Path) -> str:
    done = subprocess.run(["sha256sum", str(path)], capture_output=True, check=True, text=True)
    return done.stdout.split()[0]


def measure(size: int, repeat: int) -> list[tuple[str, float]]:
    with tempfile.TemporaryDirectory(prefix="deml-bench-") as tmp:
        path = Path(tmp) / "blob.bin"
        _write_file(path, size)
        runs: list[tuple[str, Callable[[], object]]] = [
            ("deml cid v1 (cid_of_file, version=1)", lambda: cid_of_file(path, version=1)),
            ("deml cid v0 (cid_of_file, version=0)", lambda: cid_of_file(path, version=0)),
            ("hashlib.sha256, one pass", lambda: _hashlib_sha256(path)),
        ]
        if shutil.which("sha256sum"):
            runs.append(("sha256sum (GNU coreutils)", lambda: _sha256sum(path)))
        return [(name, _best_seconds(run, repeat)) for name, run in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="file size in MB (10^6 bytes)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; best is kept")
    args = parser.parse_args()
    size = args.mb * MB
    results = measure(size, args.repeat)
    print(f"file: {args.mb} MB ({size:,} bytes), best of {args.repeat}, cpus: {os.cpu_count()}")
    print(f"{'tool':<40} {'seconds':>8} {'MB/s':>8}")
    for name, seconds in results:
        print(f"{name:<40} {seconds:>8.3f} {size / MB / seconds:>8.0f}")


if __name__ == "__main__":
    main()
