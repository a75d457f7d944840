"""CARv1 (content-addressed archive) reading and writing, as trustless gateways serve it.

A CARv1 is ``varint(len) header`` then sections ``varint(len) CID block``; the header is the
dag-cbor map ``{"roots": [CID...], "version": 1}``. Reading verifies every block against its
CID *as it is read*, so nothing downstream ever sees unverified bytes. Only the small CBOR
subset a CAR header uses is decoded; anything else is refused, not guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol

from deml_protocol.cid import Cid, CidError, decode_cid_bytes, verify_block
from deml_protocol.multibase import varint_encode

__all__ = ["ByteSource", "CarBlock", "CarError", "CarReader", "write_car"]

#: Refuse absurd lengths before allocating: a UnixFS block is at most ~1 MiB in practice.
MAX_SECTION_BYTES: Final = 4 << 20
MAX_HEADER_BYTES: Final = 64 << 10
_CID_TAG: Final = 42


class CarError(ValueError):
    """Bytes that are not a well-formed CARv1 stream."""

    code: ClassVar[str] = "bad_car"


class ByteSource(Protocol):
    """Anything with ``read(n)``: a file, ``gzip.open(...)``, an HTTP response's raw stream."""

    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True, slots=True)
class CarBlock:
    cid: Cid
    data: bytes


def _read_exact(stream: ByteSource, size: int, *, what: str) -> bytes:
    """Loop on short reads: network streams may return less than asked before the end."""
    data = stream.read(size)
    while len(data) < size and (more := stream.read(size - len(data))):
        data += more
    if len(data) != size:
        raise CarError(f"CAR ends inside {what} ({len(data)} of {size} bytes)")
    return data


def _read_varint(stream: ByteSource, what: str) -> int | None:
    """Next unsigned varint, or None at a clean end of stream."""
    value = shift = 0
    for count in range(9):
        byte = stream.read(1)
        if not byte:
            if count == 0:
                return None
            raise CarError(f"CAR ends inside the length of {what}")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
    raise CarError(f"length of {what} is longer than 9 bytes")


class _Cbor:
    """Just enough dag-cbor for a CAR header: maps, arrays, strings, uints, tag 42."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def _take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise CarError("CAR header is truncated")
        self.pos += size
        return self.data[self.pos - size : self.pos]

    def _head(self) -> tuple[int, int]:
        first = self._take(1)[0]
        major, info = first >> 5, first & 0x1F
        if info < 24:
            return major, info
        if info > 27:
            raise CarError(f"CAR header uses unsupported CBOR additional info {info}")
        return major, int.from_bytes(self._take(1 << (info - 24)), "big")

    def item(self, depth: int = 0) -> object:
        if depth > 4:
            raise CarError("CAR header nests deeper than a header ever does")
        major, arg = self._head()
        if major == 0:
            return arg
        if major in (2, 3):
            raw = self._take(arg)
            return raw if major == 2 else raw.decode("utf-8", "strict")
        if major == 4:
            return [self.item(depth + 1) for _ in range(min(arg, MAX_HEADER_BYTES))]
        if major == 5:
            pairs = [(self.item(depth + 1), self.item(depth + 1)) for _ in range(arg)]
            if not all(isinstance(key, str) for key, _ in pairs):
                raise CarError("CAR header map has a non-string key")
            return dict(pairs)
        if major == 6 and arg == _CID_TAG:
            tagged = self.item(depth + 1)
            if not isinstance(tagged, bytes) or tagged[:1] != b"\0":
                raise CarError("CID in CAR header is not tag-42 bytes with a 0x00 prefix")
            return decode_cid_bytes(tagged, 1)[0]
        raise CarError(f"CAR header uses unsupported CBOR major type {major}")


def _parse_header(raw: bytes) -> tuple[Cid, ...]:
    try:
        header = _Cbor(raw).item()
    except (CidError, UnicodeDecodeError) as exc:
        raise CarError(f"CAR header is malformed: {exc}") from exc
    if not isinstance(header, dict):
        raise CarError("CAR header is not a map")
    version = header.get("version")
    if version == 2:
        raise CarError(
            "this is a CARv2; ask for CARv1 (Accept: application/vnd.ipld.car;version=1)"
        )
    if version != 1:
        raise CarError(f"unsupported CAR version {version!r}; only CARv1 is read")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(root, Cid) for root in roots):
        raise CarError("CAR header 'roots' is not a list of CIDs")
    return tuple(roots)


class CarReader:
    """Iterate the verified blocks of a CARv1 stream; ``roots`` is read on construction."""

    def __init__(self, stream: ByteSource) -> None:
        self._stream = stream
        size = _read_varint(stream, "the CAR header")
        if size is None or not 0 < size <= MAX_HEADER_BYTES:
            raise CarError(f"CAR header length {size} is missing or out of range")
        self.roots = _parse_header(_read_exact(stream, size, what="the CAR header"))

    def __iter__(self) -> Iterator[CarBlock]:
        while (size := _read_varint(self._stream, "a CAR section")) is not None:
            if not 0 < size <= MAX_SECTION_BYTES:
                raise CarError(f"CAR section of {size} bytes is out of range")
            section = _read_exact(self._stream, size, what="a CAR section")
            try:
                cid, start = decode_cid_bytes(section)
            except CidError as exc:
                raise CarError(f"CAR section has a bad CID: {exc}") from exc
            block = section[start:]
            verify_block(cid, block)
            yield CarBlock(cid, block)


def write_car(roots: Iterable[Cid], blocks: Iterable[CarBlock]) -> bytes:
    """A CARv1 with the given roots and blocks, header encoded as canonical dag-cbor."""
    cids = [b"\0" + root.to_bytes() for root in roots]
    if len(cids) > 23:
        raise CarError(f"write_car supports at most 23 roots, got {len(cids)}")
    header = bytearray(b"\xa2\x65roots" + bytes([0x80 + len(cids)]))
    for raw in cids:
        header += b"\xd8\x2a\x58" + bytes([len(raw)]) + raw
    header += b"\x67version\x01"
    out = [varint_encode(len(header)), bytes(header)]
    for block in blocks:
        cid = block.cid.to_bytes()
        out += (varint_encode(len(cid) + len(block.data)), cid, block.data)
    return b"".join(out)
