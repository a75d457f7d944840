"""Held-out shards: the sponsor's ``.npz`` of ``X`` and ``y``, bounded and validated.

Format: a NumPy ``.npz`` (``np.savez`` or ``np.savez_compressed``) holding exactly two
arrays, ``X`` (float32, ``[rows, features]``, finite) and ``y`` (``[rows]``; integer class
labels ``0..C-1`` for classification, real targets for regression). Pickles are refused
(``allow_pickle=False``), and each member's *uncompressed* size is checked before it is
read, so a small compressed blob cannot expand past the bounds in memory.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numpy.lib import format as npy_format

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

_MEMBERS: Final = ("X.npy", "y.npy")

AnyArray = npt.NDArray[Any]


@dataclass(frozen=True, slots=True, eq=False)
class Shard:
    """``X`` float32 C-contiguous ``[rows, d]``; ``y`` int64 labels or float64 targets."""

    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64] | npt.NDArray[np.float64]

    @property
    def rows(self) -> int:
        return int(self.X.shape[0])


def _check_members(archive: zipfile.ZipFile) -> None:
    """Exactly X and y, whose headers promise no more data than the members hold.

    NumPy allocates what a header declares before reading, so a lying header is refused
    here, before any allocation; the uncompressed total is bounded the same way.
    """
    infos = archive.infolist()
    names = sorted(info.filename for info in infos)
    if names != sorted(_MEMBERS):
        raise ShardInvalid(f"members {names}; accepted: exactly X and y (np.savez(f, X=.., y=..))")
    expanded = sum(info.file_size for info in infos)
    if expanded > MAX_SHARD_ARRAY_BYTES:
        raise ShardTooLarge(
            f"arrays take {expanded} bytes uncompressed; at most {MAX_SHARD_ARRAY_BYTES} accepted"
        )
    for info in infos:
        with archive.open(info) as member:
            version = npy_format.read_magic(member)  # type: ignore[no-untyped-call]
            if version == (1, 0):
                header = npy_format.read_array_header_1_0(member)  # type: ignore[no-untyped-call]
            elif version == (2, 0):
                header = npy_format.read_array_header_2_0(member)  # type: ignore[no-untyped-call]
            else:
                raise ShardInvalid(f"{info.filename}: .npy format {version}; accepted 1.0, 2.0")
        shape, _, dtype = header
        if dtype.hasobject or math.prod(shape) * dtype.itemsize > info.file_size:
            raise ShardInvalid(
                f"{info.filename}: header declares {shape} of {dtype}, more "
                "than the member holds, or objects; accepted: numeric arrays"
            )


def _read_arrays(data: bytes) -> tuple[AnyArray, AnyArray]:
    """Decode X and y; every NumPy/zip failure becomes ``shard_invalid``."""
    try:
        loaded = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ShardInvalid("a single .npy array; accepted: an .npz holding X and y")
        with loaded as npz:
            _check_members(npz.zip)
            return npz["X"], npz["y"]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ShardInvalid(f"not a readable .npz of numeric arrays X and y ({exc})") from exc


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
