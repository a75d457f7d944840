"""How a round's budget is split. Integers only: every validator pays the same wei.

Both rules floor each share and return the remainder, which the round carries forward (to
the next round's budget, or to the sponsor's refund after the last round), so
``sum(shares) + remainder == budget`` always holds.
"""

from __future__ import annotations

from collections.abc import Sequence


def proportional(budget: int, gains: Sequence[int]) -> tuple[list[int], int]:
    """Shares proportional to each accepted submission's gain over the baseline (gains > 0)."""
    if any(gain <= 0 for gain in gains):
        raise ValueError("proportional shares need positive gains")
    total = sum(gains)
    if total == 0:
        return [], budget
    shares = [budget * gain // total for gain in gains]
    return shares, budget - sum(shares)


def equal(budget: int, count: int) -> tuple[list[int], int]:
    """Equal shares: the sponsor never revealed the shard, so every passing model is paid."""
    if count == 0:
        return [], budget
    share = budget // count
    return [share] * count, budget - share * count


def round_budgets(escrow: int, rounds: int) -> list[int]:
    """The escrow split over rounds; the first round also takes the division's remainder."""
    base = escrow // rounds
    return [base + escrow - base * rounds] + [base] * (rounds - 1)
