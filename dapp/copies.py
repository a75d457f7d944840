"""Copy detection within a round, by commit order: who showed a model first is its author.

A model revealed in a round is a copy when a submission **committed before it** in the same
round revealed the same weights, or a model that behaves the same on the held-out shard:
outputs on the shard's first rows (``Evaluation.behaviour``, integer millionths) all within
:data:`ABSOLUTE_MILLIONTHS` of it, or within 1/:data:`RELATIVE_DIVISOR` of it for large
outputs. Copies are neither paid nor averaged (``dapp.settlement``).

Commit order, not reveal order, decides, so a watcher who sees a model uploaded and commits
the same CID later cannot take the author's place by revealing first; near-copies (one ULP
off, a little noise, k sybils of one model) fall in the author's group and earn one share
between them: the author's. Copies of a global model, or of a model shown in an earlier
round, are marked at reveal (``dapp.rounds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from .records import Submission

__all__ = ["ABSOLUTE_MILLIONTHS", "RELATIVE_DIVISOR", "later_copies"]

#: Two outputs closer than 1e-4 are the same behaviour (a 1-ULP weight change moves a
#: probability by about 1e-7; honest models trained on different data differ by far more).
ABSOLUTE_MILLIONTHS: Final = 100
#: ... or closer than 1e-4 of their size, for large regression outputs.
RELATIVE_DIVISOR: Final = 10_000


def later_copies(in_commit_order: Sequence[Submission]) -> set[str]:
    """The clients whose revealed model copies one committed earlier in the round."""
    copies: set[str] = set()
    fingerprints: set[bytes] = set()
    originals: list[npt.NDArray[np.int64]] = []
    for sub in in_commit_order:
        behaviour = np.frombuffer(sub.behaviour, dtype=np.int64) if sub.behaviour else None
        if sub.fingerprint in fingerprints or _behaves_like(behaviour, originals):
            copies.add(sub.client)
            continue
        if sub.fingerprint is not None:
            fingerprints.add(sub.fingerprint)
        if behaviour is not None:
            originals.append(behaviour)
    return copies


def _behaves_like(
    behaviour: npt.NDArray[np.int64] | None, originals: list[npt.NDArray[np.int64]]
) -> bool:
    if behaviour is None:
        return False
    same_shape = [o for o in originals if o.shape == behaviour.shape]
    if not same_shape:
        return False
    others = np.stack(same_shape)
    distance = np.abs(others - behaviour)
    allowed = np.maximum(
        ABSOLUTE_MILLIONTHS, np.maximum(np.abs(others), np.abs(behaviour)) // RELATIVE_DIVISOR
    )
    return bool((distance <= allowed).all(axis=1).any())
