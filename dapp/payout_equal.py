"""Payout policy ``equal``: models that beat the baseline by at least ``minGain`` share the
round's budget equally, whatever their gain.

Caps what any one accepted model takes at an equal share, so a model fitted to the shard
(the sponsor's self-dealing) earns what each honest winner earns and no more; but a lazy
update that just clears ``minGain`` earns as much as a full one, so set ``minGain`` to the
smallest gain worth a full share.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import payouts
from .records import Amount

__all__ = ["accept", "split"]


def accept(gains: Sequence[int], *, min_gain: int) -> list[bool]:
    return payouts.beats_baseline(gains, min_gain=min_gain)


def split(budget: Amount, gains: Sequence[int]) -> tuple[list[Amount], Amount]:
    """``floor(budget / n)`` each; the remainder is carried."""
    return payouts.equal(budget, len(gains))
