"""Copy detection within a round, by commit order: who showed a model first is its author.

A model revealed in a round is a copy when a submission **committed before it** in the same
round revealed the same weights, or nearly the same. Each reveal keeps a sketch of its model
(:func:`weights_sketch`): the :data:`SKETCH_SIZE` weights that moved most from the round's
global model, by position. A later model is a near-copy of an earlier one when at least
9/10 of their sketch positions agree and on those every weight is within
1/:data:`RELATIVE_DIVISOR` of the other (or within :data:`ABSOLUTE_TOLERANCE`, near zero).
Copies are neither paid nor averaged, and forfeit their bonds (``dapp.settlement``).

Commit order, not reveal order, decides, so a watcher who sees a model uploaded and commits
the same CID later cannot take the author's place by revealing first; near-copies (one ULP
off, a little noise, k sybils of one model) fall in the author's group and earn one share
between them: the author's. Copies of a global model, or of a model shown in an earlier
round, and near-copies of the round's global model (:func:`is_near`) are marked at reveal
(``dapp.rounds``).

Why weights, and why the ones that moved: the weights are the exact bytes every validator
holds and the comparison is element-wise IEEE arithmetic, so x86_64 and riscv64 decide the
same (ONNX Runtime's outputs differ by an ULP between them). The weights that moved are where
two honestly trained models differ; weights no client's data touched are equal in every
model and say nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from .onnx_checks import ParsedModel
from .records import Submission

__all__ = [
    "ABSOLUTE_TOLERANCE",
    "RELATIVE_DIVISOR",
    "SKETCH_SIZE",
    "is_near",
    "later_copies",
    "weights_sketch",
]

#: Weights kept per model (all of them, for models this small).
SKETCH_SIZE: Final = 256
#: Two weights closer than 1/10,000 of their size are the same weight (one float32 ULP is
#: 1/8,388,608; honest models trained on different data differ by far more) ...
RELATIVE_DIVISOR: Final = 10_000
#: ... and so are two weights closer than this to each other near zero.
ABSOLUTE_TOLERANCE: Final = 1e-7
#: Near-copies share at least this fraction (in tenths) of their sketch positions.
SHARED_TENTHS: Final = 9


def weights_sketch(model: ParsedModel, base: ParsedModel) -> bytes:
    """Positions (int64) and float32 values of the model's :data:`SKETCH_SIZE` weights that
    differ most from ``base`` (the round's global model), positions ascending; ties go to
    the lower position. -0.0 reads as 0.0."""
    flat = _flat(model)
    moved = np.abs(flat.astype(np.float64) - _flat(base).astype(np.float64))
    count = min(SKETCH_SIZE, flat.size)
    positions = np.sort(np.argsort(-moved, kind="stable")[:count]).astype("<i8")
    return bytes(positions.tobytes() + flat[positions].astype("<f4").tobytes())


def is_near(model: ParsedModel, base: ParsedModel) -> bool:
    """Every weight within the tolerance of ``base``'s: a near-copy of the global model (one
    ULP off, a little noise), told at reveal like an exact copy."""
    a, b = _flat(model).astype(np.float64), _flat(base).astype(np.float64)
    allowed = np.maximum(ABSOLUTE_TOLERANCE, np.maximum(np.abs(a), np.abs(b)) / RELATIVE_DIVISOR)
    return bool((np.abs(a - b) <= allowed).all())


def later_copies(in_commit_order: Sequence[Submission]) -> set[str]:
    """The clients whose revealed model copies one committed earlier in the round.

    Each model is compared with all the earlier originals at once (one array operation per
    step, not one per pair): a close compares up to 256 x 255 / 2 pairs, and the emulator
    pays for every Python-level step. The result is :func:`_near`'s, pair by pair."""
    copies: set[str] = set()
    originals = _Originals(len(in_commit_order))
    for sub in in_commit_order:
        sketch = _read(sub.sketch)
        if originals.any_near(sketch):
            copies.add(sub.client)
        else:
            originals.add(sketch)
    return copies


class _Originals:
    """The round's originals so far: sketches of one size as the rows of two arrays (those of
    another size, which one graph never gives, are kept aside and compared one by one)."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.count = capacity, 0
        self.positions: npt.NDArray[np.int64] | None = None
        self.values: npt.NDArray[np.float64] | None = None
        self.others: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []

    def add(self, sketch: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]) -> None:
        positions, values = sketch
        if self.positions is None:
            self.positions = np.empty((self.capacity, positions.size), dtype=np.int64)
            self.values = np.empty((self.capacity, positions.size), dtype=np.float64)
        if positions.size != self.positions.shape[1] or self.values is None:
            self.others.append(sketch)
            return
        self.positions[self.count], self.values[self.count] = positions, values
        self.count += 1

    def any_near(self, sketch: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]) -> bool:
        if any(_near(sketch, other) for other in self.others):
            return True
        pa, va = sketch
        if self.positions is None or self.values is None or self.count == 0 or pa.size == 0:
            return False
        if pa.size != self.positions.shape[1]:
            return any(
                _near(sketch, (self.positions[i], self.values[i])) for i in range(self.count)
            )
        pb, vb = self.positions[: self.count], self.values[: self.count]
        # For each original's position, where it would sit in ``pa`` (positions are sorted
        # and unique): ``hit`` marks the positions both sketches hold, as intersect1d finds.
        index = np.minimum(np.searchsorted(pa, pb), pa.size - 1)
        hit = pa[index] == pb
        shared = hit.sum(axis=1)
        x, y = va[index], vb
        allowed = np.maximum(
            ABSOLUTE_TOLERANCE, np.maximum(np.abs(x), np.abs(y)) / RELATIVE_DIVISOR
        )
        close = (np.abs(x - y) <= allowed) | ~hit
        near = (shared * 10 >= SHARED_TENTHS * pa.size) & (shared > 0) & close.all(axis=1)
        return bool(near.any())


def _flat(model: ParsedModel) -> npt.NDArray[np.float32]:
    return np.concatenate([w.reshape(-1) for w in model.weights.values()]) + np.float32(0.0)


def _read(sketch: bytes) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    count = len(sketch) // 12
    positions = np.frombuffer(sketch[: 8 * count], dtype="<i8").astype(np.int64)
    values = np.frombuffer(sketch[8 * count :], dtype="<f4").astype(np.float64)
    return positions, values


def _near(
    a: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
    b: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
) -> bool:
    (pa, va), (pb, vb) = a, b
    shared, ia, ib = np.intersect1d(pa, pb, assume_unique=True, return_indices=True)
    if shared.size * 10 < SHARED_TENTHS * max(pa.size, pb.size) or shared.size == 0:
        return False
    x, y = va[ia], vb[ib]
    allowed = np.maximum(ABSOLUTE_TOLERANCE, np.maximum(np.abs(x), np.abs(y)) / RELATIVE_DIVISOR)
    return bool((np.abs(x - y) <= allowed).all())
