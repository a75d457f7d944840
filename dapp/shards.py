"""Held-out shards: the sponsor's ``.npz`` of ``X`` and ``y``, bounded and validated.

Format: a NumPy ``.npz`` (``np.savez`` or ``np.savez_compressed``) holding exactly two
arrays, ``X`` (float32, ``[rows, features]``, finite) and ``y`` (``[rows]``; integer class
labels ``0..C-1`` for classification, real targets for regression).

The container is read here, not by ``zipfile``/``np.load``, so every step is bounded before
it runs (``docs/evaluation.md`` §7): exactly two members ``X.npy`` and ``y.npy``, stored or
deflated, no encryption, data descriptors, ZIP64 directories, comments or gaps, at most
``MAX_EXTRA_BYTES`` of extra fields per header; every size comes from the central directory,
agrees with the local headers and is checked against ``MAX_SHARD_ARRAY_BYTES`` before a byte
is inflated, and inflating stops at the declared size. Each ``.npy`` header is parsed by hand
(plain number types only, so no pickles) and must declare exactly the bytes the member holds.
A failure anywhere is ``shard_invalid`` (``shard_too_large`` for the size bounds).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from deml_protocol.errors import ShardInvalid, ShardTooLarge

from .metrics import Metric

__all__ = ["MAX_SHARD_ARRAY_BYTES", "MAX_SHARD_BYTES", "MAX_SHARD_ROWS", "Shard", "load_shard"]

#: Bytes of the ``.npz`` blob itself.
MAX_SHARD_BYTES: Final = 8 * 1024 * 1024
#: Bytes of ``X`` and ``y`` together once decompressed: what the machine must hold in RAM.
MAX_SHARD_ARRAY_BYTES: Final = 32 * 1024 * 1024
MAX_SHARD_ROWS: Final = 1_000_000
#: Largest class label; real jobs have a handful of classes, this only keeps ints sane.
MAX_LABEL: Final = 1_000_000

#: Bytes of extra fields in one ZIP header. ``np.savez`` writes 20 (its ZIP64 sizes record)
#: in each local header and none in the central directory; other zip tools add a few
#: timestamp or owner records. Unbounded, the field is what made ``zipfile`` quadratic.
MAX_EXTRA_BYTES: Final = 64
#: Bytes of one ``.npy`` header: NumPy writes 118 for a 2-D array (padded to 64-byte
#: alignment), whatever its size.
MAX_NPY_HEADER_BYTES: Final = 1024

_MEMBERS: Final = ("X.npy", "y.npy")

# ZIP records (APPNOTE.TXT 4.3): fixed sizes, signatures, the values this reader accepts.
_LOCAL_SIGNATURE: Final = 0x04034B50
_CD_SIGNATURE: Final = 0x02014B50
_EOCD_SIGNATURE: Final = 0x06054B50
_LOCAL_BYTES: Final = 30
_CD_BYTES: Final = 46
_EOCD_BYTES: Final = 22
_ZIP64_ESCAPE: Final = 0xFFFFFFFF
_ZIP64_EXTRA: Final = 0x0001
_STORED: Final = 0
_DEFLATED: Final = 8
#: Bits 1-2 (deflate level hints) and 11 (UTF-8 names). Not bit 0 (encryption), 3 (sizes in
#: a data descriptor after the data), 6 (strong encryption), 13 (masked directory) or others.
_ALLOWED_FLAGS: Final = 0x0002 | 0x0004 | 0x0800

#: The number types a member may hold, by ``.npy`` descr: an explicit byte order, so the
#: same bytes mean the same values on every platform (no ``=``, ``|`` for one byte only, no
#: ``f16``, whose meaning differs between x86_64 and riscv64).
_DTYPES: Final[dict[str, np.dtype[Any]]] = {
    f"{order}{kind}{size}": np.dtype(f"{order}{kind}{size}")
    for kind, sizes in (("i", (1, 2, 4, 8)), ("u", (1, 2, 4, 8)), ("f", (2, 4, 8)))
    for size in sizes
    for order in ("<", ">", *(("|",) if size == 1 else ()))
}
# A descr string, a bool, or a Python tuple of sizes: (), (4,), (4, 3), (4, 3,); not (4).
_NPY_SIZE: Final = rb"\s*+\d{1,18}\s*+"
_NPY_TUPLE: Final = (
    rb"\((?:" + _NPY_SIZE + rb",(?:" + _NPY_SIZE + rb",)*+(?:" + _NPY_SIZE + rb")?+)?+\s*+\)"
)
_NPY_VALUE: Final = rb"(?:'[<>|][a-z]\d{1,2}'|True|False|" + _NPY_TUPLE + rb")"
_NPY_ITEM: Final = rb"\s*+'(descr|fortran_order|shape)'\s*+:\s*+(" + _NPY_VALUE + rb")\s*+"
_NPY_FIELD: Final = re.compile(_NPY_ITEM)
_NPY_HEADER: Final = re.compile(rb"\{" + _NPY_ITEM + rb"(?:," + _NPY_ITEM + rb")*+,?+\s*+\}\s*+")

AnyArray = npt.NDArray[Any]


@dataclass(frozen=True, slots=True, eq=False)
class Shard:
    """``X`` float32 C-contiguous ``[rows, d]``; ``y`` int64 labels or float64 targets."""

    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64] | npt.NDArray[np.float64]

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])


def _u16(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 2], "little")


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at : at + 4], "little")


@dataclass(frozen=True, slots=True)
class _Member:
    """One central-directory entry, checked field by field."""

    name: str
    flags: int
    method: int
    crc: int
    compressed: int
    size: int
    offset: int


def _extra_records(extra: bytes, where: str) -> list[tuple[int, bytes]]:
    """(id, body) of each record of a small, well-formed extra field."""
    if len(extra) > MAX_EXTRA_BYTES:
        raise ShardInvalid(
            f"{where}: {len(extra)} bytes of extra fields; at most {MAX_EXTRA_BYTES}"
        )
    records = []
    at = 0
    while at < len(extra):
        if at + 4 > len(extra) or at + 4 + _u16(extra, at + 2) > len(extra):
            raise ShardInvalid(f"{where}: malformed extra field")
        end = at + 4 + _u16(extra, at + 2)
        records.append((_u16(extra, at), extra[at + 4 : end]))
        at = end
    return records


def _central_directory(data: bytes) -> tuple[list[_Member], int]:
    """The two members the central directory lists, and where it starts.

    The end record must close the blob (no comment, nothing after it), the directory must end
    where the end record starts, and no field may hold a ZIP64 escape value.
    """
    if len(data) < _EOCD_BYTES or _u32(data, len(data) - _EOCD_BYTES) != _EOCD_SIGNATURE:
        raise ShardInvalid(
            "no ZIP end record at the end of the blob (truncated, trailing bytes or a comment)"
        )
    eocd = len(data) - _EOCD_BYTES
    disk, cd_disk, on_disk, total = (_u16(data, eocd + at) for at in (4, 6, 8, 10))
    cd_size, cd_offset, comment = (
        _u32(data, eocd + 12),
        _u32(data, eocd + 16),
        _u16(data, eocd + 20),
    )
    if disk or cd_disk or comment or on_disk != total:
        raise ShardInvalid("multi-disk archive or archive comment; accepted: a plain .npz")
    if total != len(_MEMBERS):
        raise ShardInvalid(f"{total} members; accepted: exactly X and y (np.savez(f, X=.., y=..))")
    if cd_offset + cd_size != eocd:
        raise ShardInvalid("the central directory does not end where the end record starts")
    members, at = [], cd_offset
    for _ in range(total):
        if at + _CD_BYTES > eocd or _u32(data, at) != _CD_SIGNATURE:
            raise ShardInvalid("malformed central directory entry")
        name_len, extra_len, comment_len = (_u16(data, at + k) for k in (28, 30, 32))
        end = at + _CD_BYTES + name_len + extra_len + comment_len
        if end > eocd:
            raise ShardInvalid("central directory entry runs past the directory")
        name = data[at + _CD_BYTES : at + _CD_BYTES + name_len]
        records = _extra_records(data[at + _CD_BYTES + name_len : end - comment_len], "directory")
        member = _Member(
            name=name.decode("latin-1"),
            flags=_u16(data, at + 8),
            method=_u16(data, at + 10),
            crc=_u32(data, at + 16),
            compressed=_u32(data, at + 20),
            size=_u32(data, at + 24),
            offset=_u32(data, at + 42),
        )
        if comment_len or _u16(data, at + 34):
            raise ShardInvalid(f"member {member.name!r}: file comment or disk number")
        if _ZIP64_ESCAPE in (member.compressed, member.size, member.offset) or any(
            rid == _ZIP64_EXTRA for rid, _ in records
        ):
            raise ShardInvalid(f"member {member.name!r}: ZIP64 directory entries are not accepted")
        members.append(member)
        at = end
    if at != eocd:
        raise ShardInvalid("bytes between the central directory and the end record")
    names = sorted(m.name for m in members)
    if names != sorted(_MEMBERS):
        raise ShardInvalid(f"members {names}; accepted: exactly X and y (np.savez(f, X=.., y=..))")
    return members, cd_offset


def _check_member(data: bytes, member: _Member) -> tuple[int, int]:
    """(start, end) of the member's stored bytes, its local header matching the directory."""
    what = f"member {member.name!r}"
    if member.flags & ~_ALLOWED_FLAGS:
        raise ShardInvalid(
            f"{what}: flags {member.flags:#06x} (encryption, data descriptor or other "
            "extensions); accepted: a plain np.savez archive"
        )
    if member.method not in (_STORED, _DEFLATED):
        raise ShardInvalid(f"{what}: compression method {member.method}; accepted: stored, deflate")
    if member.method == _STORED and member.compressed != member.size:
        raise ShardInvalid(f"{what}: stored with {member.compressed} bytes for {member.size}")
    at = member.offset
    if at + _LOCAL_BYTES > len(data) or _u32(data, at) != _LOCAL_SIGNATURE:
        raise ShardInvalid(f"{what}: no local header at offset {at}")
    name_len, extra_len = _u16(data, at + 26), _u16(data, at + 28)
    start = at + _LOCAL_BYTES + name_len + extra_len
    if start > len(data) or data[at + _LOCAL_BYTES : at + _LOCAL_BYTES + name_len] != (
        member.name.encode("latin-1")
    ):
        raise ShardInvalid(f"{what}: the local header names another member")
    records = _extra_records(data[start - extra_len : start], f"{what} local header")
    sizes = (_u32(data, at + 18), _u32(data, at + 22))
    if sizes == (_ZIP64_ESCAPE, _ZIP64_ESCAPE):  # np.savez's force_zip64 local header
        zip64 = [body for rid, body in records if rid == _ZIP64_EXTRA]
        if len(zip64) != 1 or len(zip64[0]) != 16:
            raise ShardInvalid(f"{what}: ZIP64 local header without its sizes record")
        size, compressed = (int.from_bytes(zip64[0][k : k + 8], "little") for k in (0, 8))
        sizes = (compressed, size)
    elif any(rid == _ZIP64_EXTRA for rid, _ in records):
        raise ShardInvalid(f"{what}: ZIP64 record in a local header without ZIP64 sizes")
    local = (_u16(data, at + 6), _u16(data, at + 8), _u32(data, at + 14), *sizes)
    if local != (member.flags, member.method, member.crc, member.compressed, member.size):
        raise ShardInvalid(f"{what}: local header disagrees with the central directory")
    return start, start + member.compressed


def _inflate(data: memoryview, member: _Member) -> bytes | memoryview:
    """The member's bytes, never more than the directory declared, CRC-checked."""
    if member.method == _STORED:
        raw: bytes | memoryview = data
    else:
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            raw = inflater.decompress(data, member.size + 1)
        except zlib.error as exc:
            raise ShardInvalid(f"member {member.name!r}: corrupt deflate stream ({exc})") from exc
        if len(raw) != member.size or not inflater.eof or inflater.unused_data:
            raise ShardInvalid(
                f"member {member.name!r}: the deflate stream does not hold exactly "
                f"{member.size} bytes"
            )
    if zlib.crc32(raw) != member.crc:
        raise ShardInvalid(f"member {member.name!r}: CRC-32 mismatch")
    return raw


def _read_members(data: bytes) -> dict[str, bytes | memoryview]:
    """Each member's bytes, from a strict reading of the ZIP container.

    Exactly two members, laid out back to back from offset 0 up to the central directory; all
    sizes come from the directory, agree with the local headers and are bounded before any
    byte is inflated.
    """
    members, cd_offset = _central_directory(data)
    expanded = sum(m.size for m in members)
    if expanded > MAX_SHARD_ARRAY_BYTES:
        raise ShardTooLarge(
            f"arrays take {expanded} bytes uncompressed; at most {MAX_SHARD_ARRAY_BYTES} accepted"
        )
    spans = {m.name: _check_member(data, m) for m in members}
    ordered = sorted(members, key=lambda m: m.offset)
    bounds = [m.offset for m in ordered] + [cd_offset]  # each member ends where the next starts
    if bounds[0] != 0 or any(
        spans[m.name][1] != end for m, end in zip(ordered, bounds[1:], strict=True)
    ):
        raise ShardInvalid(
            "members do not lie back to back from the blob's start up to the central directory "
            "(gaps, overlaps, prepended or hidden bytes)"
        )
    view = memoryview(data)
    return {m.name: _inflate(view[slice(*spans[m.name])], m) for m in members}


def _npy_header(
    raw: bytes | memoryview, name: str
) -> tuple[np.dtype[Any], tuple[int, ...], bool, int]:
    """(dtype, shape, fortran_order, data offset) of a ``.npy`` member, parsed by hand.

    The header is the dict literal NumPy writes, read with a regular expression instead of
    ``ast.literal_eval``: plain number types in an explicit byte order, a tuple of sizes.
    """
    head = bytes(raw[:12])
    if head[:6] != b"\x93NUMPY" or head[6:8] not in (b"\x01\x00", b"\x02\x00"):
        raise ShardInvalid(f"{name}: not a .npy member of format 1.0 or 2.0")
    prefix, length = (10, _u16(head, 8)) if head[6] == 1 else (12, _u32(head, 8))
    if length > MAX_NPY_HEADER_BYTES or prefix + length > len(raw):
        raise ShardInvalid(
            f"{name}: .npy header of {length} bytes; at most {MAX_NPY_HEADER_BYTES}, in the member"
        )
    text = bytes(raw[prefix : prefix + length])
    fields = dict(_NPY_FIELD.findall(text)) if _NPY_HEADER.fullmatch(text) else {}
    if sorted(fields) != [b"descr", b"fortran_order", b"shape"] or len(
        _NPY_FIELD.findall(text)
    ) != len(fields):
        raise ShardInvalid(
            f"{name}: .npy header {text[:80]!r}; accepted: {{'descr': .., 'fortran_order': .., "
            "'shape': (..)}, each once, with descr an int8..64, uint8..64 or float16/32/64 in "
            "'<' or '>' byte order"
        )
    descr = fields[b"descr"].decode("ascii").strip("'")
    if descr not in _DTYPES:
        raise ShardInvalid(f"{name}: dtype {descr!r}; accepted: {', '.join(sorted(_DTYPES))}")
    shape = tuple(int(size) for size in re.findall(rb"\d+", fields[b"shape"]))
    return _DTYPES[descr], shape, fields[b"fortran_order"] == b"True", prefix + length


def _read_array(raw: bytes | memoryview, name: str) -> AnyArray:
    """The array a ``.npy`` member holds: exactly the bytes its header declares, no more."""
    dtype, shape, fortran_order, offset = _npy_header(raw, name)
    count = math.prod(shape)
    if count * dtype.itemsize != len(raw) - offset:
        raise ShardInvalid(
            f"{name}: header declares {shape} of {dtype} ({count * dtype.itemsize} bytes), "
            f"the member holds {len(raw) - offset}"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    if not array.flags.aligned:  # a stored member's data lies wherever the ZIP put it
        array = array.copy()
    if fortran_order:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)


def _read_arrays(data: bytes) -> tuple[AnyArray, AnyArray]:
    """Decode X and y with the strict reader above; every failure is ``shard_invalid``."""
    members = _read_members(data)
    return _read_array(members["X.npy"], "X.npy"), _read_array(members["y.npy"], "y.npy")


def _check_features(X: AnyArray) -> npt.NDArray[np.float32]:
    if X.dtype != np.float32 or X.ndim != 2:
        raise ShardInvalid(f"X is {X.dtype} with shape {X.shape}; accepted: float32 [rows, d]")
    rows, features = X.shape
    if not 1 <= rows <= MAX_SHARD_ROWS or features < 1:
        raise ShardInvalid(
            f"X has {rows} rows and {features} features; accepted: "
            f"1..{MAX_SHARD_ROWS} rows, at least 1 feature"
        )
    if not np.isfinite(X).all():
        raise ShardInvalid("X holds NaN or infinite values; accepted: finite features only")
    return np.ascontiguousarray(X)


def _check_labels(y: AnyArray, metric: Metric) -> npt.NDArray[np.int64]:
    if y.dtype.kind not in "iu":
        raise ShardInvalid(f"y is {y.dtype}; {metric} needs integer class labels")
    labels = y.astype(np.int64)
    if labels.min() < 0 or labels.max() > MAX_LABEL:
        raise ShardInvalid(f"labels span {labels.min()}..{labels.max()}; accepted: 0..{MAX_LABEL}")
    if metric is Metric.ROC_AUC:
        positives = int(np.count_nonzero(labels == 1))
        if labels.max() > 1 or positives in (0, len(labels)):
            raise ShardInvalid("roc_auc needs binary labels 0/1 with both classes present")
    return labels


def _check_targets(y: AnyArray, metric: Metric) -> npt.NDArray[np.float64]:
    if y.dtype.kind not in "iuf":
        raise ShardInvalid(f"y is {y.dtype}; {metric} needs real-valued targets")
    targets = y.astype(np.float64)
    if not np.isfinite(targets).all():
        raise ShardInvalid("y holds NaN or infinite targets; accepted: finite values only")
    return targets


def load_shard(data: bytes, metric: Metric) -> Shard:
    """Decode and validate a shard for ``metric`` (labels for classification, else targets)."""
    if len(data) > MAX_SHARD_BYTES:
        raise ShardTooLarge(f"shard is {len(data)} bytes; at most {MAX_SHARD_BYTES} accepted")
    X, y = _read_arrays(data)
    features = _check_features(X)
    if y.ndim != 1 or y.shape[0] != features.shape[0]:
        raise ShardInvalid(f"y has shape {y.shape}; accepted: [{features.shape[0]}] (one per row)")
    if metric.is_classification:
        return Shard(features, _check_labels(y, metric))
    return Shard(features, _check_targets(y, metric))
