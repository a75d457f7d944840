"""Example federations for demos and tests, and the held-out shard file format.

A shard is an ``.npz`` with ``X`` (float32, ``[rows, features]``) and ``y`` (int64 labels or
float64 targets), saved without pickles: exactly what the DApp loads
(``np.load(..., allow_pickle=False)``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

Features = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Federation:
    """Private client partitions plus one held-out shard per round (the sponsor's)."""

    partitions: list[tuple[Features, Labels]]
    holdouts: list[tuple[Features, Labels]]
    feature_mean: npt.NDArray[np.float64]
    feature_std: npt.NDArray[np.float64]


def shard_bytes(X: npt.ArrayLike, y: npt.ArrayLike) -> bytes:
    buffer = io.BytesIO()
    labels = np.asarray(y)
    labels = labels.astype(np.int64) if labels.dtype.kind in "iub" else labels.astype(np.float64)
    np.savez(buffer, X=np.ascontiguousarray(X, dtype=np.float32), y=labels)
    return buffer.getvalue()


def breast_cancer_federation(
    *, clients: int = 3, rounds: int = 2, holdout_rows: int = 80, seed: int = 7
) -> Federation:
    """scikit-learn's breast-cancer data (569 rows, 30 features), z-scored with published
    constants (the job's recipe names them), shuffled with ``seed`` and split: one held-out
    shard of ``holdout_rows`` per round, the rest into ``clients`` private partitions."""
    from sklearn.datasets import load_breast_cancer  # host-side only; heavy import

    data = load_breast_cancer()
    X = np.asarray(data.data, dtype=np.float64)
    y = np.asarray(data.target, dtype=np.int64)
    mean, std = X.mean(axis=0), X.std(axis=0)
    order = np.random.default_rng(seed).permutation(len(y))
    Xz = ((X - mean) / std).astype(np.float32)[order]
    y = y[order]
    windows = [slice(i * holdout_rows, (i + 1) * holdout_rows) for i in range(rounds)]
    holdouts = [(Xz[window], y[window]) for window in windows]
    rest_X, rest_y = Xz[rounds * holdout_rows :], y[rounds * holdout_rows :]
    parts = np.array_split(np.arange(len(rest_y)), clients)
    partitions = [(rest_X[idx], rest_y[idx]) for idx in parts]
    return Federation(partitions, holdouts, mean, std)


class DataError(ValueError):
    """A data file the console cannot read as features and labels."""

    code: ClassVar[str] = "bad_data"


def load_table(path: Path) -> tuple[npt.NDArray[np.float32], npt.NDArray[Any]]:
    """``(X, y)`` from a CSV (numbers; the last column is the label; a header row is skipped)
    or an ``.npz`` with arrays ``X`` and ``y``. Integral labels come back int64, others
    float64."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            if "X" not in archive or "y" not in archive:
                raise DataError(f"{path}: an .npz needs arrays X and y, has {list(archive)}")
            X, y = np.asarray(archive["X"]), np.asarray(archive["y"])
    else:
        X, y = _read_csv(path)
    y = y.reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise DataError(f"{path}: expected rows of features plus a label, got X {X.shape}")
    labels = y.astype(np.int64) if np.all(np.mod(y, 1) == 0) else y.astype(np.float64)
    return X.astype(np.float32), labels


def _read_csv(path: Path) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    text = path.read_text().splitlines()
    first = text[0].split(",") if text else []
    skip = 1 if first and not _is_number(first[0]) else 0
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"{path}: not a CSV of numbers ({exc})") from exc
    if table.shape[1] < 2:
        raise DataError(f"{path}: needs at least one feature column and a label column")
    return table[:, :-1], table[:, -1]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
