"""Content-addressed blobs, uploaded in chunks because one input carries at most 65,216 bytes.

``beginBlob(cid, size)`` opens an upload; ``putChunk(cid, offset, data)`` appends bytes in
order (``offset`` must equal the bytes received so far); the chunk that completes the size
triggers the check: the assembled bytes must import to ``cid`` under a DeML profile
(:func:`deml_protocol.cid.verify_content`), and only then is the blob stored and a
``BlobStored`` notice emitted. Uploads are per (uploader, CID); ``abortBlob`` drops one, and
one not finished within ``upload_ttl_s`` of block time after its ``beginBlob`` is abandoned:
it takes no more chunks and the next ``beginBlob`` (anyone's) drops it.

Quotas count bytes actually held (stored blobs plus chunks received), never announced sizes,
so filling the DApp's memory costs as many inputs as the bytes themselves. Running totals live
in ``state.counters`` (``blob_bytes`` and ``blob_bytes:<address>``): no per-input scan.
"""

from __future__ import annotations

from dataclasses import replace

from deml_protocol import notices
from deml_protocol.cid import CidError, compute_cid, parse_cid, verify_content
from deml_protocol.errors import (
    BadArgument,
    BlobExists,
    BlobNotFound,
    BlobTooLarge,
    ChunkExceedsSize,
    ChunkOutOfOrder,
    CidMismatch,
    DuplicateChunk,
    InvalidCid,
    NoSuchUpload,
    QuotaExceeded,
    TooManyUploads,
    UploadExpired,
    UploadInProgress,
)

from .config import BlobLimits
from .context import Context
from .records import Blob, Upload
from .state import State


def canonical_cid(text: str) -> str:
    try:
        return str(parse_cid(text))
    except CidError as exc:
        raise InvalidCid(str(exc)) from exc


def handle_begin_blob(ctx: Context, *, cid: str, size: int) -> None:
    cid = canonical_cid(cid)
    limits, state, sender = ctx.config.blobs, ctx.state, ctx.sender
    if cid in state.blobs:
        raise BlobExists(f"{cid} is already stored; use it as it is")
    _drop_abandoned(ctx)  # first, so an abandoned upload of this CID can be begun again
    if (sender, cid) in state.uploads:
        received = state.uploads[(sender, cid)].received
        raise UploadInProgress(
            f"you are already uploading {cid}: send putChunk at offset "
            f"{received}, or abortBlob to start again"
        )
    if size > limits.max_blob_bytes:
        raise BlobTooLarge(f"{size} bytes; a blob may have at most {limits.max_blob_bytes}")
    mine = sum(1 for who, _ in state.uploads if who == sender)
    if mine >= limits.max_uploads_per_sender:
        raise TooManyUploads(f"you have {mine} unfinished uploads; finish or abortBlob one")
    _check_quota(state, sender, size, limits)  # would the whole blob fit right now?
    upload = Upload(
        cid=cid,
        uploader=sender,
        size=size,
        chunks=(),
        received=0,
        started_ts=ctx.meta.block_timestamp,
    )
    if size == 0:
        _complete(ctx, upload)
    else:
        state.uploads[(sender, cid)] = upload


def handle_put_chunk(ctx: Context, *, cid: str, offset: int, data: bytes) -> None:
    upload = _live_upload(ctx, canonical_cid(cid))
    if offset < upload.received:
        raise DuplicateChunk(
            f"bytes up to {upload.received} of {upload.cid} are already in; "
            f"send the chunk at offset {upload.received}"
        )
    if offset > upload.received:
        raise ChunkOutOfOrder(
            f"chunks go in order: expected offset {upload.received}, got {offset}"
        )
    if not data:
        raise BadArgument("an empty chunk; send the next bytes of the blob")
    if offset + len(data) > upload.size:
        raise ChunkExceedsSize(
            f"chunk ends at {offset + len(data)}, past the announced size {upload.size}"
        )
    _check_quota(ctx.state, ctx.sender, len(data), ctx.config.blobs)
    _count(ctx.state, ctx.sender, len(data))
    upload = replace(upload, chunks=upload.chunks + (data,), received=offset + len(data))
    if upload.received == upload.size:
        del ctx.state.uploads[(upload.uploader, upload.cid)]
        _complete(ctx, upload)
    else:
        ctx.state.uploads[(upload.uploader, upload.cid)] = upload


def handle_abort_blob(ctx: Context, *, cid: str) -> None:
    key = (ctx.sender, canonical_cid(cid))
    if key not in ctx.state.uploads:
        raise NoSuchUpload(f"you have no upload of {key[1]} in progress")
    _count(ctx.state, ctx.sender, -ctx.state.uploads.pop(key).received)


def _live_upload(ctx: Context, cid: str) -> Upload:
    upload = ctx.state.uploads.get((ctx.sender, cid))
    if upload is None:
        hint = " (it is stored already)" if cid in ctx.state.blobs else "; send beginBlob first"
        raise NoSuchUpload(f"you have no upload of {cid} in progress{hint}")
    if _is_abandoned(upload, ctx.meta.block_timestamp, ctx.config.blobs.upload_ttl_s):
        raise UploadExpired(
            f"the upload of {cid} was not finished within "
            f"{ctx.config.blobs.upload_ttl_s} s of its beginBlob; "
            "send beginBlob again"
        )
    return upload


def _complete(ctx: Context, upload: Upload) -> None:
    data = b"".join(upload.chunks)
    try:
        verify_content(upload.cid, data)
    except CidError as exc:
        raise CidMismatch(
            f"the {len(data)} bytes received do not match {upload.cid} ({exc}); "
            "nothing was stored: abortBlob and upload again"
        ) from exc
    if upload.cid in ctx.state.blobs:  # someone else finished the same content first
        _count(ctx.state, upload.uploader, -len(data))
        return
    ctx.state.blobs[upload.cid] = Blob(
        cid=upload.cid, size=len(data), uploader=upload.uploader, input_index=ctx.meta.input_index
    )
    ctx.state.blob_bytes[upload.cid] = data
    ctx.notice(notices.BLOB_STORED.encode(upload.cid, len(data), upload.uploader))


def _is_abandoned(upload: Upload, now_ts: int, ttl_s: int) -> bool:
    return now_ts - upload.started_ts > ttl_s


def _drop_abandoned(ctx: Context) -> None:
    ttl = ctx.config.blobs.upload_ttl_s
    for key, upload in list(ctx.state.uploads.items()):
        if _is_abandoned(upload, ctx.meta.block_timestamp, ttl):
            del ctx.state.uploads[key]
            _count(ctx.state, upload.uploader, -upload.received)


def _count(state: State, holder: str, delta: int) -> None:
    """Move the running byte totals (all holders, and this holder) by ``delta``."""
    for key in ("blob_bytes", f"blob_bytes:{holder}"):
        total = state.counters.get(key, 0) + delta
        if total:
            state.counters[key] = total
        else:
            state.counters.pop(key, None)  # no zero rows: the state digest stays canonical


def _check_quota(state: State, sender: str, more: int, limits: BlobLimits) -> None:
    held = state.counters.get("blob_bytes", 0)
    if held + more > limits.total_quota_bytes:
        raise QuotaExceeded(
            f"the DApp holds {held} of its {limits.total_quota_bytes} blob "
            f"bytes; {more} more do not fit"
        )
    mine = state.counters.get(f"blob_bytes:{sender}", 0)
    if mine + more > limits.sender_quota_bytes:
        raise QuotaExceeded(
            f"you hold {mine} of your {limits.sender_quota_bytes} blob bytes; "
            f"{more} more do not fit (abortBlob unfinished uploads)"
        )


def blob_bytes(state: State, cid: str) -> bytes:
    """The bytes of a stored blob, for jobs and evaluations."""
    cid = canonical_cid(cid)
    data = state.blob_bytes.get(cid)
    if data is None:
        raise BlobNotFound(f"{cid} is not stored; upload it with beginBlob/putChunk first")
    return data


def store_derived_blob(ctx: Context, data: bytes) -> str:
    """Store bytes the DApp made itself (an aggregated model); returns the CID (v1).

    Not charged to anyone's quota: its size is bounded by the job's graph, which passed the
    model-size check when the job was posted.
    """
    cid = compute_cid(data)
    if cid not in ctx.state.blobs:
        uploader = ctx.meta.app_contract
        ctx.state.blobs[cid] = Blob(
            cid=cid, size=len(data), uploader=uploader, input_index=ctx.meta.input_index
        )
        ctx.state.blob_bytes[cid] = data
        _count(ctx.state, uploader, len(data))
        ctx.notice(notices.BLOB_STORED.encode(cid, len(data), uploader))
    return cid
