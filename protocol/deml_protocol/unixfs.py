"""dag-pb nodes carrying UnixFS file data: the exact bytes Kubo writes, and a strict reader.

Encoders produce byte-for-byte what ``ipfs add`` stores, because the CID is the hash of
those bytes: links are written before data, every file link carries an empty ``Name``, and
UnixFS ``blocksizes`` are unpacked repeated fields. Leaf encoding is split into a header and
a trailer so the hot path can hash ``header + chunk + trailer`` without copying the chunk.

Links hold raw CID bytes (not :class:`~deml_protocol.cid.Cid`) so this module needs nothing
above :mod:`deml_protocol.multibase`; :mod:`deml_protocol.cid` walks DAGs on top of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from .multibase import CidError, MultibaseError, varint_decode, varint_encode

__all__ = [
    "DagPbError",
    "PbLink",
    "PbNode",
    "UnixfsData",
    "UnixfsType",
    "decode_pb_node",
    "decode_unixfs",
    "encode_file_node",
    "leaf_node_parts",
]

_VARINT, _LEN = 0, 2
_Field = tuple[int, int, "int | memoryview"]


class DagPbError(CidError):
    """A block that should be a dag-pb UnixFS node does not decode as one."""

    code: ClassVar[str] = "bad_dag_node"


class UnixfsType(IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class PbLink:
    cid: bytes
    name: str
    tsize: int


@dataclass(frozen=True, slots=True)
class PbNode:
    links: tuple[PbLink, ...]
    data: bytes | None


@dataclass(frozen=True, slots=True)
class UnixfsData:
    type: UnixfsType
    data: bytes
    filesize: int | None
    blocksizes: tuple[int, ...]


def leaf_node_parts(size: int) -> tuple[bytes, bytes]:
    """``(header, trailer)`` around a chunk of ``size`` bytes: a CIDv0 (dag-pb) leaf."""
    size_varint = varint_encode(size)
    data_field = b"\x12" + size_varint if size else b""
    unixfs_len = 2 + len(data_field) + size + 1 + len(size_varint)
    header = b"\x0a" + varint_encode(unixfs_len) + b"\x08\x02" + data_field
    return header, b"\x18" + size_varint


def encode_file_node(links: Sequence[PbLink], blocksizes: Sequence[int]) -> bytes:
    """An inner node of a file DAG: links first, then UnixFS ``File`` with sizes, no data.

    ``blocksizes`` are the file bytes under each link; ``filesize`` is their sum.
    """
    parts: list[bytes] = []
    for link in links:
        name = link.name.encode()
        body = b"".join(
            (
                b"\x0a",
                varint_encode(len(link.cid)),
                link.cid,
                b"\x12",
                varint_encode(len(name)),
                name,
                b"\x18",
                varint_encode(link.tsize),
            )
        )
        parts += (b"\x12", varint_encode(len(body)), body)
    unixfs = b"\x08\x02\x18" + varint_encode(sum(blocksizes))
    unixfs += b"".join(b"\x20" + varint_encode(size) for size in blocksizes)
    parts += (b"\x0a", varint_encode(len(unixfs)), unixfs)
    return b"".join(parts)


def _fields(buf: memoryview, what: str) -> Iterator[_Field]:
    """Protobuf fields as ``(number, wire type, value)``; only varint and bytes wire types."""
    pos = 0
    try:
        while pos < len(buf):
            key, pos = varint_decode(buf, pos)
            number, wire = key >> 3, key & 7
            if wire == _VARINT:
                value, pos = varint_decode(buf, pos)
                yield number, wire, value
            elif wire == _LEN:
                size, pos = varint_decode(buf, pos)
                if pos + size > len(buf):
                    raise DagPbError(f"{what}: field {number} runs past the end of the block")
                yield number, wire, buf[pos : pos + size]
                pos += size
            else:
                raise DagPbError(f"{what}: field {number} has unsupported wire type {wire}")
    except MultibaseError as exc:
        raise DagPbError(f"{what}: {exc}") from exc


def _as_bytes(field: _Field, what: str) -> memoryview:
    number, _, value = field
    if not isinstance(value, memoryview):
        raise DagPbError(f"{what}: field {number} should be length-delimited, got a varint")
    return value


def _as_int(field: _Field, what: str) -> int:
    number, _, value = field
    if not isinstance(value, int):
        raise DagPbError(f"{what}: field {number} should be a varint, got bytes")
    return value


def _decode_link(buf: memoryview) -> PbLink:
    cid, name, tsize = b"", "", 0
    for field in _fields(buf, "dag-pb link"):
        number = field[0]
        if number == 1:
            cid = bytes(_as_bytes(field, "dag-pb link Hash"))
        elif number == 2:
            try:
                name = bytes(_as_bytes(field, "dag-pb link Name")).decode()
            except UnicodeDecodeError as exc:
                raise DagPbError("dag-pb link Name is not UTF-8") from exc
        elif number == 3:
            tsize = _as_int(field, "dag-pb link Tsize")
        else:
            raise DagPbError(f"dag-pb link has unknown field {number}")
    if not cid:
        raise DagPbError("dag-pb link has no Hash")
    return PbLink(cid, name, tsize)


def decode_pb_node(block: bytes | memoryview) -> PbNode:
    """Strict dag-pb: only ``Links`` (2) and ``Data`` (1), each link with a ``Hash``."""
    links: list[PbLink] = []
    data: bytes | None = None
    for field in _fields(memoryview(block), "dag-pb node"):
        value = _as_bytes(field, "dag-pb node")
        if field[0] == 2:
            links.append(_decode_link(value))
        elif field[0] == 1 and data is None:
            data = bytes(value)
        else:
            raise DagPbError(f"dag-pb node has an unexpected or repeated field {field[0]}")
    return PbNode(tuple(links), data)


def decode_unixfs(data: bytes | memoryview) -> UnixfsData:
    """UnixFS ``Data``; mode, mtime, hashType and fanout are read past, not interpreted."""
    kind: int | None = None
    content, filesize, blocksizes = b"", None, []
    for field in _fields(memoryview(data), "UnixFS data"):
        number = field[0]
        if number == 1:
            kind = _as_int(field, "UnixFS Type")
        elif number == 2:
            content = bytes(_as_bytes(field, "UnixFS Data"))
        elif number == 3:
            filesize = _as_int(field, "UnixFS filesize")
        elif number == 4:
            blocksizes.append(_as_int(field, "UnixFS blocksizes"))
        elif number not in (5, 6, 7, 8):
            raise DagPbError(f"UnixFS data has unknown field {number}")
    if kind is None or kind not in UnixfsType._value2member_map_:
        raise DagPbError(f"UnixFS data has a missing or unknown Type ({kind})")
    return UnixfsData(UnixfsType(kind), content, filesize, tuple(blocksizes))
