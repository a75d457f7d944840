"""Content-addressed blobs, uploaded in chunks because one input carries at most 65,216 bytes.

``beginBlob(cid, size)`` opens an upload; ``putChunk(cid, offset, data)`` appends bytes in
order (``offset`` must equal the bytes received so far); the chunk that completes the size
triggers the check: the assembled bytes must import to ``cid`` under a DeML profile
(:func:`deml_protocol.cid.verify_content`), and only then is the blob stored and a
``BlobStored`` notice emitted. Uploads are per (uploader, CID); ``abortBlob`` drops one, and
one not finished within ``upload_ttl_s`` of block time after its ``beginBlob`` is abandoned:
it takes no more chunks, its uploader may ``beginBlob`` it again, and anyone may drop it
(``dropUpload``). ``collectBlobs`` deletes stored blobs nothing needs any more.

Quotas count bytes actually held (stored blobs plus chunks received), never announced sizes,
so filling the DApp's memory costs as many inputs as the bytes themselves; bytes paid from a
reservation (``dapp.storage``) need no free room. Running totals live in ``state.counters``
(``blob_bytes``, ``blob_bytes:<address>``, ``uploads:<address>``): no per-input scan.
"""

from __future__ import annotations

from dataclasses import replace

from deml_protocol import notices
from deml_protocol.cid import CidError, compute_cid, parse_cid, verify_content
from deml_protocol.errors import (
    BadArgument,
    BlobExists,
    BlobInUse,
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

from . import storage
from .config import BlobLimits
from .context import Context
from .records import Blob, Upload
from .state import State, add_count

#: At most this many CIDs per ``collectBlobs``.
MAX_COLLECT = 64


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
    previous = state.uploads.get((sender, cid))
    if previous is not None:
        if not _is_abandoned(previous, ctx.meta.block_timestamp, limits.upload_ttl_s):
            raise UploadInProgress(
                f"you are already uploading {cid}: send putChunk at offset "
                f"{previous.received}, or abortBlob to start again"
            )
        _drop(state, previous)  # your own abandoned upload of it: start again
    if size > limits.max_blob_bytes:
        raise BlobTooLarge(f"{size} bytes; a blob may have at most {limits.max_blob_bytes}")
    mine = state.counters.get(f"uploads:{sender}", 0)
    if mine >= limits.max_uploads_per_sender:
        raise TooManyUploads(
            f"you have {mine} unfinished uploads; finish or abortBlob one (uploads/{sender})"
        )
    # Would the whole blob fit right now, after what your reservations pay for?
    _check_quota(state, sender, size - storage.reserved_by(state, sender), limits)
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
        add_count(state, f"uploads:{sender}", 1)


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
    paid = min(len(data), storage.reserved_by(ctx.state, ctx.sender))
    _check_quota(ctx.state, ctx.sender, len(data) - paid, ctx.config.blobs)
    storage.take_reserved(ctx.state, ctx.sender, paid)
    _count(ctx.state, ctx.sender, len(data))
    upload = replace(
        upload,
        chunks=upload.chunks + (data,),
        received=offset + len(data),
        reserved=upload.reserved + paid,
    )
    if upload.received == upload.size:
        del ctx.state.uploads[(upload.uploader, upload.cid)]
        add_count(ctx.state, f"uploads:{upload.uploader}", -1)
        _complete(ctx, upload)
    else:
        ctx.state.uploads[(upload.uploader, upload.cid)] = upload


def handle_abort_blob(ctx: Context, *, cid: str) -> None:
    key = (ctx.sender, canonical_cid(cid))
    upload = ctx.state.uploads.get(key)
    if upload is None:
        raise NoSuchUpload(f"you have no upload of {key[1]} in progress")
    _drop(ctx.state, upload)


def handle_drop_upload(ctx: Context, *, uploader: str, cid: str) -> None:
    """Anyone may drop an abandoned upload, freeing the bytes it received."""
    key = (uploader.lower(), canonical_cid(cid))
    upload = ctx.state.uploads.get(key)
    if upload is None:
        raise NoSuchUpload(f"{key[0]} has no upload of {key[1]} in progress")
    ttl = ctx.config.blobs.upload_ttl_s
    if not _is_abandoned(upload, ctx.meta.block_timestamp, ttl):
        raise BlobInUse(
            f"the upload is live until block time {upload.started_ts + ttl}; "
            "only its uploader may abort it before then"
        )
    _drop(ctx.state, upload)


def handle_collect_blobs(ctx: Context, *, cids: list[str]) -> None:
    """Delete stored blobs that nothing pins and whose keep time is over: all or none."""
    if not 1 <= len(cids) <= MAX_COLLECT:
        raise BadArgument(f"name 1 to {MAX_COLLECT} CIDs; got {len(cids)}")
    now = ctx.meta.block_timestamp
    for text in cids:
        cid = canonical_cid(text)
        blob = ctx.state.blobs.get(cid)
        if blob is None:
            raise BlobNotFound(f"{cid} is not stored (named twice, or collected already?)")
        if blob.pins:
            raise BlobInUse(
                f"{cid} is pinned by {blob.pins} live reference(s): a job's graph or global "
                "model, or a shard or model of a round not yet closed"
            )
        if now < blob.keep_until_ts:
            raise BlobInUse(f"{cid} is kept until block time {blob.keep_until_ts}; now is {now}")
        del ctx.state.blobs[cid]
        del ctx.state.blob_bytes[cid]
        _count(ctx.state, blob.uploader, -blob.size)
        ctx.notice(notices.BLOB_DELETED.encode(cid, blob.size))


def _drop(state: State, upload: Upload) -> None:
    """Forget an unfinished upload: its bytes are freed, what reservations paid is promised
    again."""
    del state.uploads[(upload.uploader, upload.cid)]
    add_count(state, f"uploads:{upload.uploader}", -1)
    _count(state, upload.uploader, -upload.received)
    storage.give_back(state, upload.uploader, upload.reserved)


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
        storage.give_back(ctx.state, upload.uploader, upload.reserved)
        return
    ctx.state.blobs[upload.cid] = Blob(
        cid=upload.cid,
        size=len(data),
        uploader=upload.uploader,
        input_index=ctx.meta.input_index,
        keep_until_ts=ctx.meta.block_timestamp + ctx.config.blobs.keep_s,
        reserved=upload.reserved,
    )
    ctx.state.blob_bytes[upload.cid] = data
    ctx.notice(notices.BLOB_STORED.encode(upload.cid, len(data), upload.uploader))


def _is_abandoned(upload: Upload, now_ts: int, ttl_s: int) -> bool:
    return now_ts - upload.started_ts > ttl_s


def _count(state: State, holder: str, delta: int) -> None:
    """Move the running byte totals (all holders, and this holder) by ``delta``."""
    add_count(state, "blob_bytes", delta)
    add_count(state, f"blob_bytes:{holder}", delta)


def _check_quota(state: State, sender: str, more: int, limits: BlobLimits) -> None:
    """Do ``more`` unreserved bytes fit? Reserved bytes are promised to others."""
    if more <= 0:
        return  # paid by the sender's reservations in full
    storage.check_room(state, limits, more)
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

    Not checked against a quota: its size is bounded by the job's graph, which passed the
    model-size check when the job was posted, and the caller pins it at once.
    """
    cid = compute_cid(data)
    if cid not in ctx.state.blobs:
        uploader = ctx.meta.app_contract
        ctx.state.blobs[cid] = Blob(
            cid=cid,
            size=len(data),
            uploader=uploader,
            input_index=ctx.meta.input_index,
            keep_until_ts=ctx.meta.block_timestamp + ctx.config.blobs.keep_s,
        )
        ctx.state.blob_bytes[cid] = data
        _count(ctx.state, uploader, len(data))
        ctx.notice(notices.BLOB_STORED.encode(cid, len(data), uploader))
    return cid
