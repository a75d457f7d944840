"""How a round's budget is split: the integer arithmetic the payout policies share
(``dapp.policies``). Integers only: every validator pays the same wei.

Both splits floor each share and return the remainder, which the round carries forward (to
the next round's budget, or to the sponsor's refund after the last round), so
``sum(shares) + remainder == budget`` always holds.
"""

from __future__ import annotations

from collections.abc import Sequence

from .records import Amount


def beats_baseline(gains: Sequence[int], *, min_gain: int) -> list[bool]:
    """A gain over the baseline of at least ``max(min_gain, 1)``: even with ``minGain = 0`` a
    model must strictly beat the round's global model to be accepted."""
    need = max(min_gain, 1)
    return [gain >= need for gain in gains]


def proportional(budget: Amount, gains: Sequence[int]) -> tuple[list[Amount], Amount]:
    """Shares proportional to each accepted submission's gain over the baseline (gains > 0)."""
    if any(gain <= 0 for gain in gains):
        raise ValueError("proportional shares need positive gains")
    total = sum(gains)
    if total == 0:
        return [], budget
    shares = [Amount(budget * gain // total) for gain in gains]
    return shares, Amount(budget - sum(shares))


def equal(budget: Amount, count: int) -> tuple[list[Amount], Amount]:
    """Equal shares, floored; the remainder is returned."""
    if count == 0:
        return [], budget
    share = Amount(budget // count)
    return [share] * count, Amount(budget - share * count)


def round_budgets(escrow: Amount, rounds: int) -> list[Amount]:
    """The escrow split over rounds; the first round also takes the division's remainder."""
    base = Amount(escrow // rounds)
    return [Amount(base + escrow - base * rounds)] + [base] * (rounds - 1)
