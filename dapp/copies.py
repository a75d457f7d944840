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
    """The clients whose revealed model copies one committed earlier in the round."""
    copies: set[str] = set()
    originals: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = []
    for sub in in_commit_order:
        sketch = _read(sub.sketch)
        if any(_near(sketch, original) for original in originals):
            copies.add(sub.client)
        else:
            originals.append(sketch)
    return copies


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
