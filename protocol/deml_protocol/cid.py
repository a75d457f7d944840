"""Content ids exactly as ``ipfs add`` makes them, in pure Python so the machine runs it too.

Two import profiles (see ``docs/cids.md``):

* **v1** (default) — Kubo ``ipfs add --cid-version=1``: 262,144-byte chunks stored as raw
  leaves, a balanced DAG of dag-pb UnixFS ``File`` nodes with at most 174 links, sha2-256,
  base32 ``bafy...``/``bafk...``. A file of one chunk or less is its raw leaf (``bafkrei...``).
* **v0** — plain ``ipfs add``: the same chunking and layout, but leaves are dag-pb UnixFS
  ``File`` nodes holding the chunk, and ids are base58btc ``Qm...``.

All hashing is done by :mod:`hashlib` on whole chunks, never per byte, because every Python
bytecode costs cycles in the RISC-V emulator. Memory is bounded: the builder keeps one
partial chunk plus at most 173 pending links per tree level.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from os import PathLike
from typing import ClassVar, Final

from .multibase import (
    CidError,
    MultibaseError,
    b32_encode,
    b58_decode,
    b58_encode,
    multibase_decode,
    varint_decode,
)
from .unixfs import (
    DagPbError,
    PbLink,
    UnixfsType,
    decode_pb_node,
    decode_unixfs,
    encode_file_node,
    leaf_node_parts,
)

__all__ = [
    "CHUNK_SIZE",
    "DAG_PB",
    "MAX_LINKS",
    "RAW",
    "SHA2_256",
    "Cid",
    "CidBuilder",
    "CidError",
    "CidMismatch",
    "DagPbError",
    "as_cid",
    "block_cid",
    "cid_of_file",
    "compute_cid",
    "decode_cid_bytes",
    "iter_file",
    "parse_cid",
    "verify_block",
    "verify_content",
]

DAG_PB: Final = 0x70
RAW: Final = 0x55
SHA2_256: Final = 0x12
CHUNK_SIZE: Final = 262_144
MAX_LINKS: Final = 174
_DIGEST_SIZE: Final = 32
_CODECS: Final = {DAG_PB: "dag-pb", RAW: "raw"}
_OTHER_CODECS: Final = {0x71: "dag-cbor", 0x0129: "dag-json", 0x72: "libp2p-key", 0x78: "git-raw"}
_OTHER_HASHES: Final = {
    0x00: "identity",
    0x13: "sha2-512",
    0x16: "sha3-256",
    0x1E: "blake3",
    0xB220: "blake2b-256",
}
_V0_PREFIX: Final = b"\x12\x20"
_PREFIX: Final = {
    (1, RAW): b"\x01\x55\x12\x20",
    (1, DAG_PB): b"\x01\x70\x12\x20",
    (0, DAG_PB): _V0_PREFIX,
}


class CidMismatch(CidError):
    """Bytes whose hash is not the one their CID names: corrupted or substituted data."""

    code: ClassVar[str] = "cid_content_mismatch"


def _name(table: dict[int, str], code: int) -> str:
    return f"0x{code:02x} ({table[code]})" if code in table else f"0x{code:02x}"


@dataclass(frozen=True, slots=True)
class Cid:
    """A parsed CID; only dag-pb/raw codecs and 32-byte sha2-256 digests are representable."""

    version: int
    codec: int
    hash_code: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.version not in (0, 1):
            raise CidError(f"unsupported CID version {self.version}; DeML reads CIDv0 and CIDv1")
        if self.codec not in _CODECS:
            raise CidError(
                f"unsupported codec {_name(_OTHER_CODECS, self.codec)}; "
                "DeML blobs use dag-pb (0x70) or raw (0x55)"
            )
        if self.version == 0 and self.codec != DAG_PB:
            raise CidError("a CIDv0 is always dag-pb; use CIDv1 for raw blocks")
        if self.hash_code != SHA2_256:
            raise CidError(
                f"unsupported hash {_name(_OTHER_HASHES, self.hash_code)}; "
                "only sha2-256 (0x12) is accepted"
            )
        if len(self.digest) != _DIGEST_SIZE:
            raise CidError(f"sha2-256 digest must be 32 bytes, got {len(self.digest)}")

    @property
    def codec_name(self) -> str:
        return _CODECS[self.codec]

    def to_bytes(self) -> bytes:
        """Binary form: bare multihash for v0, ``version codec multihash`` for v1."""
        return _PREFIX[(self.version, self.codec)] + self.digest

    def to_v1(self) -> Cid:
        """Same block, CIDv1 spelling (what Kubo's ``ipfs cid base32`` prints)."""
        return Cid(1, self.codec, self.hash_code, self.digest)

    def __str__(self) -> str:
        if self.version == 0:
            return b58_encode(self.to_bytes())
        return "b" + b32_encode(self.to_bytes())


def decode_cid_bytes(data: bytes | memoryview, offset: int = 0) -> tuple[Cid, int]:
    """Binary CID at ``offset`` (as in dag-pb links and CAR sections); returns it and its end."""
    view = memoryview(data)
    try:
        if bytes(view[offset : offset + 2]) == _V0_PREFIX:
            end = offset + 2 + _DIGEST_SIZE
            if end > len(view):
                raise CidError("CIDv0 bytes are truncated (need 34 bytes)")
            return Cid(0, DAG_PB, SHA2_256, bytes(view[offset + 2 : end])), end
        version, pos = varint_decode(view, offset)
        if version != 1:
            raise CidError(f"unsupported CID version {version} in binary CID")
        codec, pos = varint_decode(view, pos)
        hash_code, pos = varint_decode(view, pos)
        size, pos = varint_decode(view, pos)
    except MultibaseError as exc:
        raise CidError(f"malformed binary CID: {exc}") from exc
    if pos + size > len(view):
        raise CidError(f"binary CID digest is truncated ({len(view) - pos} of {size} bytes)")
    return Cid(1, codec, hash_code, bytes(view[pos : pos + size])), pos + size


def parse_cid(text: str) -> Cid:
    """Parse a CID as a user would paste it (surrounding whitespace allowed); strict otherwise."""
    text = text.strip()
    if not text:
        raise CidError("empty CID; expected e.g. bafkrei... (CIDv1) or Qm... (CIDv0)")
    try:
        if text.startswith("Qm"):
            if len(text) != 46:
                raise CidError(f"{_short(text)} looks like a CIDv0 but is not 46 characters long")
            raw = b58_decode(text)
        else:
            raw = multibase_decode(text)
    except MultibaseError as exc:
        raise CidError(f"{_short(text)} is not a CID: {exc}") from exc
    cid, end = decode_cid_bytes(raw)
    if end != len(raw):
        raise CidError(f"{_short(text)} has {len(raw) - end} stray bytes after the CID")
    return cid


def _short(text: str) -> str:
    return repr(text if len(text) <= 70 else text[:60] + "...")


def as_cid(cid: Cid | str) -> Cid:
    """Accept either form at API boundaries; text goes through :func:`parse_cid`."""
    return cid if isinstance(cid, Cid) else parse_cid(cid)


def block_cid(block: bytes | memoryview, codec: int = RAW, *, version: int = 1) -> Cid:
    """CID of one block: sha2-256 of its bytes, labelled with ``codec`` and ``version``."""
    return Cid(version, codec, SHA2_256, hashlib.sha256(block).digest())


def verify_block(cid: Cid | str, block: bytes | memoryview) -> None:
    """Raise :class:`CidMismatch` unless ``block`` hashes to ``cid``."""
    cid = as_cid(cid)
    digest = hashlib.sha256(block).digest()
    if digest != cid.digest:
        raise CidMismatch(
            f"block of {len(block)} bytes does not match {cid}: its sha2-256 is "
            f"{digest.hex()[:16]}..., the CID names {cid.digest.hex()[:16]}... "
            "(the source returned corrupted or different data)"
        )


def verify_content(cid: Cid | str, data: bytes | bytearray | memoryview) -> None:
    """Raise :class:`CidMismatch` unless importing ``data`` with a DeML profile gives ``cid``.

    A dag-pb root matches under either profile and either spelling (``Qm...`` and its
    ``bafy...`` twin name the same DAG). Content imported with another chunker or layout
    cannot be checked this way; walk its blocks with :func:`iter_file` instead.
    """
    cid = as_cid(cid)
    versions = (1,) if cid.codec == RAW else (cid.version, 1 - cid.version)
    for version in versions:
        found = parse_cid(compute_cid(data, version=version))
        if found.codec == cid.codec and found.digest == cid.digest:
            return
    raise CidMismatch(
        f"{len(data)} bytes do not import to {cid} (they give {found}): the data is corrupted, "
        "or was added with a different profile (chunker, raw-leaves, layout)"
    )


BlockSink = Callable[[Cid, bytes], None]
_Entry = tuple[bytes, int, int]  # (binary CID, tsize, file bytes below)


class CidBuilder:
    """Streaming ``ipfs add``: feed bytes with :meth:`update`, get the CID from :meth:`finish`.

    ``on_block`` (optional) receives every block with its CID, leaves first and the root
    last, so the same pass can fill a block store; leave it unset for hashing at full speed.
    """

    __slots__ = ("_buf", "_chunks", "_done", "_leaf_parts", "_levels", "_on_block", "_version")

    def __init__(self, version: int = 1, *, on_block: BlockSink | None = None) -> None:
        if version not in (0, 1):
            raise CidError(f"CID version must be 0 or 1, got {version}")
        self._version = version
        self._on_block = on_block
        self._buf = bytearray()
        self._chunks = 0
        self._done = False
        self._levels: list[list[_Entry]] = [[]]
        self._leaf_parts = leaf_node_parts(CHUNK_SIZE)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._done:
            raise CidError("CidBuilder.update() after finish(); start a new builder")
        view = memoryview(data)
        if self._buf:
            take = CHUNK_SIZE - len(self._buf)
            self._buf += view[:take]
            view = view[take:]
            if len(self._buf) < CHUNK_SIZE:
                return
            self._leaf(self._buf)
            self._buf = bytearray()
        while len(view) >= CHUNK_SIZE:
            self._leaf(view[:CHUNK_SIZE])
            view = view[CHUNK_SIZE:]
        self._buf += view

    def finish(self) -> str:
        """The file's CID; an empty input is one empty leaf, as in Kubo."""
        if self._done:
            raise CidError("CidBuilder.finish() called twice")
        self._done = True
        if self._buf or not self._chunks:
            self._leaf(self._buf)
        levels, level = self._levels, 0
        while any(levels[level + 1 :]):
            if levels[level]:
                entries, levels[level] = levels[level], []
                self._push(level + 1, self._node(entries))
            level += 1
        top = levels[level]
        root = top[0] if len(top) == 1 else self._node(top)
        return str(decode_cid_bytes(root[0])[0])

    def _leaf(self, chunk: bytearray | memoryview) -> None:
        self._chunks += 1
        size = len(chunk)
        if self._version == 1:
            cid = _PREFIX[(1, RAW)] + hashlib.sha256(chunk).digest()
            tsize = size
            block = bytes(chunk) if self._on_block else b""
        else:
            header, trailer = self._leaf_parts if size == CHUNK_SIZE else leaf_node_parts(size)
            digest = hashlib.sha256(header)
            digest.update(chunk)
            digest.update(trailer)
            cid = _V0_PREFIX + digest.digest()
            tsize = len(header) + size + len(trailer)
            block = header + bytes(chunk) + trailer if self._on_block else b""
        if self._on_block:
            self._on_block(decode_cid_bytes(cid)[0], block)
        self._push(0, (cid, tsize, size))

    def _push(self, level: int, entry: _Entry) -> None:
        if level == len(self._levels):
            self._levels.append([])
        pending = self._levels[level]
        pending.append(entry)
        if len(pending) == MAX_LINKS:
            self._levels[level] = []
            self._push(level + 1, self._node(pending))

    def _node(self, entries: list[_Entry]) -> _Entry:
        links = [PbLink(cid, "", tsize) for cid, tsize, _ in entries]
        sizes = [size for _, _, size in entries]
        block = encode_file_node(links, sizes)
        cid = _PREFIX[(self._version, DAG_PB)] + hashlib.sha256(block).digest()
        if self._on_block:
            self._on_block(decode_cid_bytes(cid)[0], block)
        return cid, len(block) + sum(link.tsize for link in links), sum(sizes)


def compute_cid(data: bytes | bytearray | memoryview, *, version: int = 1) -> str:
    """The CID ``ipfs add`` (``--cid-version=1`` for ``version=1``) would print for ``data``."""
    builder = CidBuilder(version)
    builder.update(data)
    return builder.finish()


def cid_of_file(path: str | PathLike[str], *, version: int = 1) -> str:
    """:func:`compute_cid` of a file, read in 1 MiB pieces so memory stays flat."""
    builder = CidBuilder(version)
    with open(path, "rb") as handle:
        while piece := handle.read(1 << 20):
            builder.update(piece)
    return builder.finish()


def _file_data(cid: Cid, block: bytes) -> tuple[bytes, list[Cid], int | None]:
    """``(inline data, child CIDs, declared filesize)`` of one verified file block."""
    if cid.codec == RAW:
        return block, [], None
    node = decode_pb_node(block)
    if node.data is None:
        raise DagPbError(f"{cid} is a dag-pb node without UnixFS data, not a file")
    unixfs = decode_unixfs(node.data)
    if unixfs.type not in (UnixfsType.FILE, UnixfsType.RAW):
        raise DagPbError(f"{cid} is a UnixFS {unixfs.type.name.lower()}, not a file")
    children = [decode_cid_bytes(link.cid)[0] for link in node.links]
    return unixfs.data, children, unixfs.filesize


def iter_file(
    root: Cid | str, get_block: Callable[[Cid], bytes], *, max_depth: int = 16
) -> Iterator[bytes]:
    """Yield a UnixFS file's bytes in order, verifying each block before it is decoded.

    ``get_block`` may come from anywhere untrusted (a gateway, a CAR): nothing it returns is
    parsed before its hash matched, and the root's declared size is checked at the end.
    """
    root = as_cid(root)
    stack: list[tuple[Cid, int]] = [(root, 0)]
    total, declared = 0, None
    while stack:
        cid, depth = stack.pop()
        block = get_block(cid)
        verify_block(cid, block)
        data, children, filesize = _file_data(cid, block)
        if cid == root:
            declared = filesize
        if children and depth >= max_depth:
            raise DagPbError(f"DAG under {root} is deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in reversed(children))
        if data:
            total += len(data)
            yield data
    if declared is not None and declared != total:
        raise DagPbError(f"{root} declares {declared} bytes but its blocks hold {total}")
