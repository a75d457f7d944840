"""The shard container, read by hand: honest ``.npz`` files load as ``np.load`` reads them,
and every hostile ZIP or ``.npy`` trick is a named rejection, decided before any costly step.

Hostile archives are built byte by byte with :func:`archive` (APPNOTE.TXT 4.3 layouts), so
each test changes exactly one thing of an otherwise valid shard.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from dapp import shards
from dapp.evaluation import evaluate
from dapp.metrics import Metric
from dapp.shards import Shard, load_shard
from deml_console import model_zoo
from deml_console.datasets import shard_bytes
from deml_protocol.errors import Rejected

X4 = np.arange(12, dtype=np.float32).reshape(4, 3)
Y4 = np.array([0, 1, 1, 0], dtype=np.int64)


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(Rejected) as caught:
        call()
    assert caught.value.detail
    return caught.value.code


def npy(array: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def npy_with_header(header: bytes, data: bytes = b"", version: int = 1) -> bytes:
    """A ``.npy`` member with a header written by hand (``\\n``-terminated, unpadded)."""
    body = header + b"\n"
    size = struct.pack("<H", len(body)) if version == 1 else struct.pack("<I", len(body))
    return b"\x93NUMPY" + bytes([version, 0]) + size + body + data


@dataclasses.dataclass
class Entry:
    """One member as it will be written; every field can lie."""

    name: str
    payload: bytes
    method: int = 0
    flags: int = 0
    compressed: bytes | None = None  # default: the payload, stored or deflated by ``method``
    local_extra: bytes = b""
    cd_extra: bytes = b""
    crc: int | None = None
    size: int | None = None  # declared uncompressed size (both headers)
    zip64_local: bool = True  # as np.savez writes: 0xFFFFFFFF sizes + a ZIP64 record
    local_name: str | None = None

    def data(self) -> bytes:
        if self.compressed is not None:
            return self.compressed
        if self.method == 8:
            deflater = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
            return deflater.compress(self.payload) + deflater.flush()
        return self.payload


def archive(
    entries: list[Entry],
    *,
    count: int | None = None,
    comment: bytes = b"",
    gap: bytes = b"",
    cd_offset_shift: int = 0,
) -> bytes:
    """Local headers and data, the central directory, the end record: a ZIP by hand."""
    out = bytearray()
    directory = bytearray()
    for entry in entries:
        data = entry.data()
        crc = zlib.crc32(entry.payload) if entry.crc is None else entry.crc
        size = len(entry.payload) if entry.size is None else entry.size
        offset = len(out)
        name = (entry.local_name or entry.name).encode()
        extra = entry.local_extra
        sizes = (len(data), size)
        if entry.zip64_local:
            extra = struct.pack("<HHQQ", 1, 16, size, len(data)) + extra
            sizes = (0xFFFFFFFF, 0xFFFFFFFF)
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 45, entry.flags, entry.method, 0, 33, crc, *sizes,
            len(name), len(extra),
        )  # fmt: skip
        out += name + extra + data + gap
        cd_name = entry.name.encode()
        directory += struct.pack(
            "<IHHHHHHIIIHHHHHII", 0x02014B50, 0x032D, 45, entry.flags, entry.method, 0, 33, crc,
            len(data), size, len(cd_name), len(entry.cd_extra), 0, 0, 0, 0o600 << 16, offset,
        )  # fmt: skip
        directory += cd_name + entry.cd_extra
    n = len(entries) if count is None else count
    cd_offset = len(out) + cd_offset_shift
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(directory), cd_offset, len(comment))
    return bytes(out + directory + end + comment)


def honest_entries(method: int = 0) -> list[Entry]:
    return [Entry("X.npy", npy(X4), method), Entry("y.npy", npy(Y4), method)]


def with_x(**changes: Any) -> bytes:
    """A valid two-member shard whose X entry has ``changes``."""
    x, y = honest_entries(changes.pop("method", 0))
    return archive([dataclasses.replace(x, **changes), y])


# ---- honest shards ------------------------------------------------------------------------


def _savez(compressed: bool, **arrays: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


HONEST_Y = [
    np.array([0, 1, 1, 0], dtype=dtype)
    for dtype in ("<i1", "<u1", "<i2", ">i2", "<u2", "<i4", ">i4", "<u4", "<i8", ">i8", "<u8")
]


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("y", HONEST_Y, ids=lambda y: y.dtype.str)
def test_honest_shards_load_as_np_load_reads_them(compressed: bool, y: npt.NDArray[Any]) -> None:
    data = _savez(compressed, X=X4, y=y)
    shard = load_shard(data, Metric.ACCURACY)
    with np.load(io.BytesIO(data)) as reference:
        np.testing.assert_array_equal(shard.X, reference["X"])
        np.testing.assert_array_equal(shard.y, reference["y"])
    assert shard.X.dtype == np.float32 and shard.X.flags.c_contiguous and shard.X.flags.aligned


@pytest.mark.parametrize("compressed", [False, True])
@pytest.mark.parametrize("dtype", ["<f2", "<f4", ">f4", "<f8", ">f8", "<i8"])
def test_honest_regression_targets(compressed: bool, dtype: str) -> None:
    y = np.array([0.5, -1, 2, 3.25]).astype(dtype)
    shard = load_shard(_savez(compressed, X=X4, y=y), Metric.RMSE)
    np.testing.assert_array_equal(shard.y, y.astype(np.float64))


def test_fortran_order_and_zipfile_written_archives() -> None:
    fortran = np.asfortranarray(np.arange(60, dtype=np.float32).reshape(20, 3))
    shard = load_shard(_savez(False, X=fortran, y=np.arange(20) % 2), Metric.ACCURACY)
    np.testing.assert_array_equal(shard.X, fortran)
    assert shard.X.flags.c_contiguous
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):  # no ZIP64 local records
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", compression=method) as written:
            written.writestr("y.npy", npy(Y4))  # any order
            written.writestr("X.npy", npy(X4))
        np.testing.assert_array_equal(load_shard(buffer.getvalue(), Metric.ACCURACY).X, X4)


def test_hand_built_archive_is_valid() -> None:
    """The builder below writes what np.savez writes, so each hostile case differs by one."""
    for method in (0, 8):
        assert load_shard(archive(honest_entries(method)), Metric.ACCURACY).rows == 4
    assert archive(honest_entries()) == _savez(False, X=X4, y=Y4)


@pytest.mark.parametrize("metric", [Metric.ACCURACY, Metric.LOG_LOSS, Metric.ROC_AUC])
@pytest.mark.parametrize("compressed", [False, True])
def test_same_scores_as_np_load(metric: Metric, compressed: bool) -> None:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((500, 30)).astype(np.float32)
    y = (X[:, 0] + rng.normal(0, 1, 500) > 0).astype(np.int64)
    data = shard_bytes(X, y) if not compressed else _savez(True, X=X, y=y)
    with np.load(io.BytesIO(data)) as reference:
        expected = Shard(np.ascontiguousarray(reference["X"]), reference["y"].astype(np.int64))
    model = model_zoo.mlp([30, 16, 2], seed=3)
    assert evaluate(model, load_shard(data, metric), metric) == evaluate(model, expected, metric)


# ---- hostile containers -------------------------------------------------------------------


def _duplicate_x() -> bytes:
    x, _ = honest_entries()
    return archive([x, dataclasses.replace(x)])


def _three_members() -> bytes:
    return archive([*honest_entries(), Entry("z.npy", npy(Y4))])


def _zip64_directory() -> bytes:
    """Central directory sizes escaped to a ZIP64 record, as for a member over 4 GiB."""
    data = bytearray(archive(honest_entries()))
    cd = data.index(struct.pack("<I", 0x02014B50))
    data[cd + 20 : cd + 28] = b"\xff" * 8
    return bytes(data)


def _zip64_end_record() -> bytes:
    return archive(honest_entries(), count=0xFFFF)


def _extra_bomb() -> bytes:
    """The reproduced attack: directory entries with 64 KiB of empty extra records."""
    extra = struct.pack("<HH", 0x9999, 0) * (65532 // 4)
    entries = honest_entries()
    entries += [Entry(f"z{i}", b"", cd_extra=extra) for i in range(8)]
    return archive(entries)


def _truncated_deflate() -> bytes:
    x, y = honest_entries(8)
    return archive([dataclasses.replace(x, compressed=x.data()[:-4]), y])


def _deflate_longer_than_declared() -> bytes:
    x, y = honest_entries(8)
    return archive([dataclasses.replace(x, size=len(x.payload) - 1), y])


def _deflate_with_trailing_bytes() -> bytes:
    x, y = honest_entries(8)
    return archive([dataclasses.replace(x, compressed=x.data() + b"\0\0"), y])


def _corrupt_deflate() -> bytes:
    x, y = honest_entries(8)
    return archive([dataclasses.replace(x, compressed=b"\x07" + x.data()[1:]), y])


def _local_header_names_other() -> bytes:
    x, y = honest_entries()
    return archive([dataclasses.replace(x, local_name="y.npy"), y])


def _local_disagrees(field: str) -> Callable[[], bytes]:
    def build() -> bytes:
        data = bytearray(archive(honest_entries()))
        at = {"flags": 6, "method": 8, "crc": 14}[field]
        data[at] ^= 0x08 if field != "crc" else 0x01
        return bytes(data)

    return build


HOSTILE: dict[str, Callable[[], bytes]] = {
    "empty": lambda: b"",
    "not a zip": lambda: b"not a zip at all, only text",
    "a bare .npy": lambda: npy(X4),
    "truncated by one byte": lambda: _savez(False, X=X4, y=Y4)[:-1],
    "truncated in half": lambda: (lambda d: d[: len(d) // 2])(_savez(False, X=X4, y=Y4)),
    "only the end record": lambda: _savez(False, X=X4, y=Y4)[-22:],
    "trailing garbage": lambda: _savez(False, X=X4, y=Y4) + b"\0",
    "prepended bytes": lambda: b"MZ" + _savez(False, X=X4, y=Y4),
    "archive comment": lambda: archive(honest_entries(), comment=b"hi"),
    "gap between members": lambda: archive(honest_entries(), gap=b"hidden"),
    "directory offset off": lambda: archive(honest_entries(), cd_offset_shift=-1),
    "one member": lambda: archive(honest_entries()[:1]),
    "three members": _three_members,
    "duplicate member": _duplicate_x,
    "wrong name": lambda: with_x(name="x.npy"),
    "name with a path": lambda: with_x(name="a/X.npy"),
    "local header names another member": _local_header_names_other,
    "unknown compression method (bzip2)": lambda: with_x(method=12, compressed=b"BZh9"),
    "unknown compression method (lzma)": lambda: with_x(method=14, compressed=b"\0" * 9),
    "encryption flag": lambda: with_x(flags=0x0001),
    "strong encryption flag": lambda: with_x(flags=0x0040),
    "data descriptor flag": lambda: with_x(flags=0x0008),
    "local flags differ": _local_disagrees("flags"),
    "local method differs": _local_disagrees("method"),
    "local crc differs": _local_disagrees("crc"),
    "crc mismatch": lambda: with_x(crc=1),
    "stored size differs from data": lambda: with_x(size=10),
    "corrupt deflate": _corrupt_deflate,
    "truncated deflate": _truncated_deflate,
    "deflate longer than declared": _deflate_longer_than_declared,
    "bytes after the deflate stream": _deflate_with_trailing_bytes,
    "zip64 directory entry": _zip64_directory,
    "zip64 end record": _zip64_end_record,
    "zip64 record in the directory": lambda: with_x(cd_extra=struct.pack("<HHQ", 1, 8, 176)),
    "zip64 record without escaped sizes": lambda: with_x(
        zip64_local=False, local_extra=struct.pack("<HHQQ", 1, 16, 176, 176)
    ),
    "huge local extra field": lambda: with_x(local_extra=struct.pack("<HH", 7, 6000) + bytes(6000)),
    "huge directory extra field": lambda: with_x(cd_extra=struct.pack("<HH", 7, 61) + bytes(61)),
    "malformed extra field": lambda: with_x(cd_extra=struct.pack("<HH", 7, 9) + bytes(4)),
    "extra-field bomb (quadratic in zipfile)": _extra_bomb,
}


@pytest.mark.parametrize("build", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_containers_are_named_rejections(build: Callable[[], bytes]) -> None:
    assert code_of(lambda: load_shard(build(), Metric.ACCURACY)) == "shard_invalid"


def test_small_extra_records_of_other_tools_are_accepted() -> None:
    timestamp = struct.pack("<HHBI", 0x5455, 5, 1, 0)  # Info-ZIP "UT" record
    assert load_shard(with_x(local_extra=timestamp, cd_extra=timestamp), Metric.ACCURACY).rows


def test_sizes_are_bounded_before_inflating(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deflate member declaring more than the bound is refused unread; one declaring less
    than it holds stops at the declared size (never inflated further)."""
    zeros = np.zeros((1 << 22, 2), dtype=np.float32)  # 32 MiB of zeros: ~32 KiB deflated
    bomb = archive([Entry("X.npy", npy(zeros), 8), Entry("y.npy", npy(Y4), 8)])
    assert len(bomb) < 100_000
    assert code_of(lambda: load_shard(bomb, Metric.ACCURACY)) == "shard_too_large"
    monkeypatch.setattr(shards, "MAX_SHARD_ARRAY_BYTES", 1 << 40)
    x = Entry("X.npy", npy(zeros), 8)
    liar = archive([dataclasses.replace(x, size=1000), Entry("y.npy", npy(Y4), 8)])
    assert code_of(lambda: load_shard(liar, Metric.ACCURACY)) == "shard_invalid"


# ---- hostile .npy members -----------------------------------------------------------------

_X_DATA = X4.tobytes()
_GOOD_HEADER = b"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }"

NPY_HOSTILE: dict[str, bytes] = {
    "not npy": b"PK\x03\x04 not an array",
    "format 3.0": b"\x93NUMPY\x03\x00" + npy(X4)[8:],
    "format 2.0 header too long": b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 30) + _X_DATA,
    "header longer than the cap": npy_with_header(_GOOD_HEADER + b" " * 2000, _X_DATA),
    "header past the member": b"\x93NUMPY\x01\x00" + struct.pack("<H", 500) + _GOOD_HEADER,
    "object dtype (pickle)": npy_with_header(
        b"{'descr': '|O', 'fortran_order': False, 'shape': (4, 3), }", bytes(96)
    ),
    "native byte order": npy_with_header(
        b"{'descr': '=f4', 'fortran_order': False, 'shape': (4, 3), }", _X_DATA
    ),
    "platform-dependent long double": npy_with_header(
        b"{'descr': '<f16', 'fortran_order': False, 'shape': (4, 3), }", bytes(192)
    ),
    "structured dtype": npy_with_header(
        b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4, 3), }", _X_DATA
    ),
    "shape not a tuple": npy_with_header(
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (12), }", _X_DATA
    ),
    "negative size": npy_with_header(
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (-4, 3), }", _X_DATA
    ),
    "missing key": npy_with_header(b"{'descr': '<f4', 'shape': (4, 3), }", _X_DATA),
    "repeated key": npy_with_header(
        b"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }", _X_DATA
    ),
    "unknown key": npy_with_header(
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), 'x': 1, }", _X_DATA
    ),
    "code in the header": npy_with_header(b"__import__('os').system('true')", _X_DATA),
    "deeply nested header": npy_with_header(b"{'shape': " + b"(" * 400 + b")" * 400 + b"}"),
    "declares more than it holds": npy_with_header(
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000), }", _X_DATA
    ),
    "holds more than it declares": npy_with_header(_GOOD_HEADER, _X_DATA + b"\0" * 4),
}


@pytest.mark.parametrize("member", NPY_HOSTILE.values(), ids=NPY_HOSTILE.keys())
@pytest.mark.parametrize("method", [0, 8])
def test_hostile_npy_members_are_named_rejections(member: bytes, method: int) -> None:
    data = archive([Entry("X.npy", member, method), Entry("y.npy", npy(Y4), method)])
    assert code_of(lambda: load_shard(data, Metric.ACCURACY)) == "shard_invalid"


@pytest.mark.parametrize(
    "header",
    [
        _GOOD_HEADER,
        b"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3)}",  # no trailing comma
        b"{'shape': (4,3,), 'descr': '<f4', 'fortran_order': False}",  # any order
        b"{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 4 , 3 ) }   ",
    ],
)
def test_npy_headers_other_writers_produce(header: bytes) -> None:
    for version in (1, 2):
        member = npy_with_header(header, _X_DATA, version)
        data = archive([Entry("X.npy", member), Entry("y.npy", npy(Y4))])
        np.testing.assert_array_equal(load_shard(data, Metric.ACCURACY).X, X4)
