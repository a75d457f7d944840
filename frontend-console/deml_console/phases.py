"""Which window of a round is open at the chain's time, how long it has left, and waiting for
the next one.

A round runs ``start_ts`` → commit → ``commit_end_ts`` → holdout (the sponsor reveals the
shard; models may be uploaded) → ``holdout_end_ts`` → reveal → ``reveal_end_ts`` → closable
(anyone may close it) → closed. Data owners may reveal during the holdout window too, once
the shard is revealed. Times are the chain's block times: the DApp judges an input by the
timestamp of the block that carries it, never by anyone's wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from deml_protocol.errors import WindowNotOpen  # checked here first: the DApp's own code
from deml_protocol.queries import RoundReply

from .output import Output
from .sdk.node import NodeTransport

__all__ = [
    "Clock",
    "Phase",
    "WindowNotOpen",
    "chain_clock",
    "clock_of",
    "describe_seconds",
    "is_sealed",
    "mined_clock_of",
    "phase_of",
    "phase_window",
    "wait_until",
]

#: The chain's current time in seconds (``chain_clock`` for a node, anything in tests).
Clock = Callable[[], int]


class Phase(StrEnum):
    COMMIT = "commit"
    HOLDOUT = "holdout"
    REVEAL = "reveal"
    CLOSABLE = "closable"
    CLOSED = "closed"


def phase_of(rnd: RoundReply, now: int) -> Phase:
    if rnd["closed"]:
        return Phase.CLOSED
    if now < rnd["commit_end_ts"]:
        return Phase.COMMIT
    if now < rnd["holdout_end_ts"]:
        return Phase.HOLDOUT
    if now < rnd["reveal_end_ts"]:
        return Phase.REVEAL
    return Phase.CLOSABLE


def phase_window(rnd: RoundReply, phase: Phase) -> tuple[int, int | None]:
    """``(opens_ts, closes_ts)`` of ``phase`` in this round; a closable round never closes."""
    bounds = {
        Phase.COMMIT: (rnd["start_ts"], rnd["commit_end_ts"]),
        Phase.HOLDOUT: (rnd["commit_end_ts"], rnd["holdout_end_ts"]),
        Phase.REVEAL: (rnd["holdout_end_ts"], rnd["reveal_end_ts"]),
    }
    if phase in bounds:
        opens, closes = bounds[phase]
        return opens, closes
    return rnd["reveal_end_ts"], None


def describe_seconds(seconds: int) -> str:
    """``1h 02m 03s`` style, for people."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def chain_clock(latest_block_ts: Callable[[], int]) -> Clock:
    """The time the next block will carry, at least: the latest block's timestamp, or the wall
    clock if later (a chain without traffic mines no blocks, yet its next block is "now")."""
    return lambda: max(int(latest_block_ts()), int(time.time()))


def clock_of(transport: NodeTransport) -> Clock:
    """:func:`chain_clock` of a node's chain."""
    return chain_clock(mined_clock_of(transport))


def mined_clock_of(transport: NodeTransport) -> Clock:
    """The latest mined block's timestamp, and nothing else: what says a window has closed
    *for good*. Once a block is stamped at or past ``commit_end_ts``, no commitment can
    enter the round (block times never go back); a transaction sent the moment the wall
    clock passes it can still land in a block stamped before it. So data that must stay
    secret until commits end (a model, a shard) waits for this clock (:func:`is_sealed`)."""
    return lambda: int(transport.web3.eth.get_block("latest")["timestamp"])


def is_sealed(rnd: RoundReply, mined: Clock) -> bool:
    """No more commitments can enter ``rnd``: a mined block is past its commit window."""
    return mined() >= int(rnd["commit_end_ts"])


def wait_until(
    target_ts: int,
    *,
    clock: Clock,
    out: Output,
    label: str,
    ready: Callable[[], bool] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until ``clock() >= target_ts`` (or ``ready()``, asked at each look at the clock),
    showing a countdown (stderr, hidden off a TTY)."""
    now = clock()
    if now >= target_ts or (ready is not None and ready()):
        return
    total = target_ts - now
    out.say(f"waiting {describe_seconds(total)} (chain time) for {label}")
    with out.progress() as progress:
        task = progress.add_task(label, total=total)
        while now < target_ts:
            sleep(min(0.5, target_ts - now))
            now = clock()
            if ready is not None and ready():
                return
            progress.update(task, completed=min(total, total - (target_ts - now)))
