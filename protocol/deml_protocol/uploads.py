"""How a client turns a file into blob-upload inputs (beginBlob, then putChunk in order).

One input carries at most 65,216 bytes; a chunk of :data:`CHUNK_BYTES` plus the ABI framing
of ``putChunk(string,uint64,bytes)`` (selector, three head words, the CID string and the
bytes length) stays below that for any CID up to 256 characters.
"""

from __future__ import annotations

from typing import Final

from .cid import compute_cid, parse_cid
from .inputs import BEGIN_BLOB, PUT_CHUNK

CHUNK_BYTES: Final = 64_512


def upload_inputs(
    data: bytes, *, cid: str | None = None, version: int = 1
) -> tuple[str, list[bytes]]:
    """``(cid, payloads)``: the inputs that store ``data`` in the DApp, in sending order."""
    cid = str(parse_cid(cid)) if cid is not None else compute_cid(data, version=version)
    payloads = [BEGIN_BLOB.encode(cid, len(data))]
    for offset in range(0, len(data), CHUNK_BYTES):
        payloads.append(PUT_CHUNK.encode(cid, offset, data[offset : offset + CHUNK_BYTES]))
    return cid, payloads
