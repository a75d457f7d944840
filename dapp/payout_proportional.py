"""Payout policy ``proportional``: models that beat the baseline by at least ``minGain``
share the round's budget in proportion to their gain.

Pays for measured improvement, so a lazy update that barely beats the baseline earns
little; but whoever fits the shard best (the sponsor knows it) takes the largest share.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import payouts
from .records import Amount

__all__ = ["accept", "split"]


def accept(gains: Sequence[int], *, min_gain: int) -> list[bool]:
    return payouts.beats_baseline(gains, min_gain=min_gain)


def split(budget: Amount, gains: Sequence[int]) -> tuple[list[Amount], Amount]:
    """``floor(budget * gain_i / sum(gains))`` each; the remainder is carried."""
    return payouts.proportional(budget, gains)
