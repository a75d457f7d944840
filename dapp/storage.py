"""Storage economics: whose bytes the DApp keeps, who is promised room, and when bytes go.

The machine keeps every blob in RAM, so room is finite (``DEML_TOTAL_QUOTA_BYTES``). Three
rules make that room serve the jobs instead of whoever fills it first:

- **Reservations.** Room for the uploads a job needs is promised when the need arises, where
  asking costs nothing if refused: a job's sponsor is promised one held-out shard per round
  (:func:`shard_reserve` bytes) when the round opens, checked when the job is posted; a client
  is promised its model (:func:`model_reserve` bytes) when it commits, checked then: a commit
  without room is rejected before any bond is taken. An upload is paid from its uploader's
  reservations first and only the rest needs free room, so a client who committed can always
  upload and reveal its model: a reveal never fails, and a bond is never lost, for lack of
  room. Reservations end with the reveal they were for, or with the round's close.
- **Pins.** A blob is pinned while something live needs it: a job's graph and global model
  until the job is finished, a revealed shard or model until its round closes.
- **Collection.** A blob that nothing pins is kept ``DEML_BLOB_KEEP_S`` of block time after
  it was stored or last unpinned (so a fresh upload waits for its reveal, and a finished job's
  model stays downloadable), then anyone may delete it with ``collectBlobs``; an upload
  abandoned past ``DEML_UPLOAD_TTL_S`` may be dropped by anyone with ``dropUpload``.

Totals are counters, never scans: ``blob_bytes`` (held: stored plus received), ``reserved``
and ``reserved:<holder>``. Held + reserved stays within the total quota, except that a round
opened by ``closeRound`` reserves its shard without a check (a close must not fail for room):
at most one shard per live job over.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from deml_protocol.errors import QuotaExceeded

from .config import BlobLimits
from .context import Context
from .shards import MAX_SHARD_BYTES
from .state import State, add_count

__all__ = [
    "check_room",
    "claim_reservation",
    "free_room",
    "give_back",
    "model_reserve",
    "pin",
    "release",
    "reserve",
    "reserved_by",
    "shard_reserve",
    "take_reserved",
    "unpin",
]

#: A model with the job's graph differs from the initial model only in weight values, which
#: have fixed sizes; this slack covers what else a serializer may vary (names, metadata).
MODEL_SLACK_MIN: Final = 1024
#: The zip and .npy headers of a shard (two members), with room to spare.
SHARD_OVERHEAD: Final = 4096


def model_reserve(graph_size: int) -> int:
    """Room promised per commitment: the job's initial model plus 1/8 (at least 1 KiB)."""
    return graph_size + max(MODEL_SLACK_MIN, graph_size // 8)


def shard_reserve(rows: int, features: int) -> int:
    """Room promised per round's shard: ``rows`` rows of float64 features and labels."""
    return min(MAX_SHARD_BYTES, SHARD_OVERHEAD + rows * (features + 1) * 8)


# ---- reservations ---------------------------------------------------------------------------


def reserved_by(state: State, holder: str) -> int:
    return state.counters.get(f"reserved:{holder}", 0)


def free_room(state: State, limits: BlobLimits) -> int:
    """Bytes nobody holds or was promised (negative after unchecked round promises)."""
    held, promised = state.counters.get("blob_bytes", 0), state.counters.get("reserved", 0)
    return limits.total_quota_bytes - held - promised


def check_room(state: State, limits: BlobLimits, size: int) -> None:
    """Refuse, with the remedy, ``size`` more bytes that the free room cannot take."""
    if size > free_room(state, limits):
        held, promised = state.counters.get("blob_bytes", 0), state.counters.get("reserved", 0)
        raise QuotaExceeded(
            f"the DApp holds {held} and has promised {promised} of its "
            f"{limits.total_quota_bytes} blob bytes; {size} more do not fit. Unpinned blobs "
            "past their keep time can be freed with collectBlobs (inspect storage/unpinned)"
        )


def reserve(state: State, limits: BlobLimits, holder: str, size: int, *, checked: bool) -> None:
    """Promise ``holder`` room for ``size`` bytes; ``checked``: only if it fits right now."""
    if checked:
        check_room(state, limits, size)
    add_count(state, "reserved", size)
    add_count(state, f"reserved:{holder}", size)


def release(state: State, holder: str, size: int) -> None:
    """End a promise of ``size`` bytes (whatever of it the holder's uploads did not use)."""
    _take(state, holder, min(size, reserved_by(state, holder)))


def take_reserved(state: State, holder: str, size: int) -> int:
    """Pay up to ``size`` uploaded bytes from the holder's reservations; returns how many."""
    taken = min(size, reserved_by(state, holder))
    _take(state, holder, taken)
    return taken


def give_back(state: State, holder: str, size: int) -> None:
    """Bytes an upload took from a reservation and then dropped: the promise stands again."""
    if size:
        add_count(state, "reserved", size)
        add_count(state, f"reserved:{holder}", size)


def claim_reservation(state: State, holder: str, cid: str, promised: int) -> None:
    """A reveal of ``cid`` ends the promise of ``promised`` bytes made for it. What the
    holder's own upload of ``cid`` took from reservations is spent; the rest is released."""
    blob = state.blobs[cid]
    spent = min(promised, blob.reserved) if blob.uploader == holder else 0
    if spent:
        state.blobs[cid] = replace(blob, reserved=blob.reserved - spent)
    release(state, holder, promised - spent)


def _take(state: State, holder: str, size: int) -> None:
    if size:
        add_count(state, "reserved", -size)
        add_count(state, f"reserved:{holder}", -size)


# ---- pins ------------------------------------------------------------------------------------


def pin(state: State, cid: str) -> None:
    blob = state.blobs[cid]
    state.blobs[cid] = replace(blob, pins=blob.pins + 1)


def unpin(ctx: Context, cid: str) -> None:
    """One reference fewer; the blob is kept at least the keep time from now."""
    blob = ctx.state.blobs[cid]
    keep_until = max(blob.keep_until_ts, ctx.meta.block_timestamp + ctx.config.blobs.keep_s)
    ctx.state.blobs[cid] = replace(blob, pins=blob.pins - 1, keep_until_ts=keep_until)
