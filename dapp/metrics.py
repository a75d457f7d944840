"""Metrics, and the integer scores that decide who gets paid.

Every metric is computed in float64 from the model's outputs and then turned into an
``int`` score where **higher is always better** (``docs/evaluation.md`` has the table):

- ``accuracy``  ``hits * 1_000_000 // rows``: parts per million, exact integer arithmetic.
- ``roc_auc``   ``2U * 1_000_000 // (2 * positives * negatives)``, with ``2U`` the
  Mann-Whitney statistic from tie-averaged ranks, doubled so it is an integer: exact too;
  floats matter only through the *order* (and ties) of the probabilities.
- ``log_loss``, ``rmse``, ``mae``: ``floor(-value * 1_000_000)``, negative micro-units.
- ``r2``        ``floor(value * 1_000_000)``, parts per million (may be negative).

The product ``value * 1_000_000`` is one float64 rounding, then floored. Where a value lies
within a few ULP of a micro-unit boundary, platforms whose last float bits differ (host
x86_64 against the riscv64 machine, §6 of the architecture) can land on neighbouring
integers; rules must compare scores with margins (the job's minimum gain), never equality.
Scores are clamped to the int64 range; :data:`SCORE_MIN` is also the score of a model
whose outputs are not all finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "LOG_LOSS_EPSILON",
    "PPM",
    "SCORE_MAX",
    "SCORE_MIN",
    "Metric",
    "MetricResult",
    "accuracy",
    "log_loss",
    "mae",
    "r2",
    "rmse",
    "roc_auc",
    "score_predictions",
]

PPM: Final = 1_000_000
SCORE_MIN: Final = -(2**63)
SCORE_MAX: Final = 2**63 - 1
#: Probability floor in log-loss, so one confident miss costs at most ``-ln(1e-15)`` ≈ 34.5.
LOG_LOSS_EPSILON: Final = 1e-15

Probabilities = npt.NDArray[np.float64]   # [N, C], each entry in [0, 1]
Labels = npt.NDArray[np.int64]            # [N], each in [0, C)
Values = npt.NDArray[np.float64]          # [N]


class Metric(StrEnum):
    ACCURACY = "accuracy"
    LOG_LOSS = "log_loss"
    ROC_AUC = "roc_auc"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"

    @property
    def is_classification(self) -> bool:
        return self in (Metric.ACCURACY, Metric.LOG_LOSS, Metric.ROC_AUC)


@dataclass(frozen=True, slots=True)
class MetricResult:
    """``score`` decides money (integer, higher is better); ``value`` is for people only."""

    score: int
    value: float


def _clamp(score: int) -> int:
    return max(SCORE_MIN, min(SCORE_MAX, score))


def _negative_micro(value: float) -> int:
    """Losses: ``floor(-value * 1e6)``; a non-finite loss gets the worst score."""
    if not math.isfinite(value):
        return SCORE_MIN
    return _clamp(math.floor(-value * PPM))


def _ppm_of_float(value: float) -> int:
    if not math.isfinite(value):
        return SCORE_MIN
    return _clamp(math.floor(value * PPM))


def accuracy(probabilities: Probabilities, labels: Labels) -> MetricResult:
    """Predicted class = first column holding the row's maximum (ties go to the lower class)."""
    hits = int(np.count_nonzero(np.argmax(probabilities, axis=1) == labels))
    rows = len(labels)
    return MetricResult(hits * PPM // rows, hits / rows)


def log_loss(probabilities: Probabilities, labels: Labels) -> MetricResult:
    """Mean ``-ln p(true class)``, each row normalised to sum 1 so outputs cannot inflate it.

    A row summing to 0 gives p = 0; p is floored at :data:`LOG_LOSS_EPSILON`.
    """
    rows = len(labels)
    true_class = probabilities[np.arange(rows), labels]
    totals = probabilities.sum(axis=1)
    p = np.divide(true_class, totals, out=np.zeros(rows), where=totals > 0)
    np.clip(p, LOG_LOSS_EPSILON, 1.0, out=p)
    value = float(-np.mean(np.log(p)))
    return MetricResult(_negative_micro(value), value)


def _twice_mann_whitney(scores: Values, labels: Labels) -> tuple[int, int, int]:
    """(2U, positives, negatives) with tied scores sharing their average rank.

    Ranks 1..n in ascending score order; a tie group spanning sorted positions
    ``[start, end)`` has average rank ``(start + 1 + end) / 2``, so twice it is an integer.
    """
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    is_positive = (labels[order] == 1).astype(np.int64)
    n = len(ranked)
    starts = np.flatnonzero(np.concatenate(([True], ranked[1:] != ranked[:-1])))
    ends = np.append(starts[1:], n)
    positives_per_group = np.add.reduceat(is_positive, starts)
    twice_rank_sum = int(np.sum(positives_per_group * (starts + 1 + ends)))
    positives = int(is_positive.sum())
    return twice_rank_sum - positives * (positives + 1), positives, n - positives


def roc_auc(probabilities: Probabilities, labels: Labels) -> MetricResult:
    """Binary ROC AUC of the class-1 column: P(positive ranked above negative), ties 1/2.

    Needs both classes present (``dapp.shards`` checks it at load).
    """
    twice_u, positives, negatives = _twice_mann_whitney(probabilities[:, 1], labels)
    pairs_twice = 2 * positives * negatives
    return MetricResult(twice_u * PPM // pairs_twice, twice_u / pairs_twice)


def rmse(predictions: Values, targets: Values) -> MetricResult:
    value = float(np.sqrt(np.mean(np.square(predictions - targets))))
    return MetricResult(_negative_micro(value), value)


def mae(predictions: Values, targets: Values) -> MetricResult:
    value = float(np.mean(np.abs(predictions - targets)))
    return MetricResult(_negative_micro(value), value)


def r2(predictions: Values, targets: Values) -> MetricResult:
    """``1 - SS_res / SS_tot``; constant targets give 1.0 if predicted exactly, else 0.0.

    (scikit-learn's ``force_finite`` convention, so the score is always defined.)
    """
    ss_res = float(np.sum(np.square(targets - predictions)))
    ss_tot = float(np.sum(np.square(targets - np.mean(targets))))
    if ss_tot == 0.0:
        value = 1.0 if ss_res == 0.0 else 0.0
    else:
        value = 1.0 - ss_res / ss_tot
    return MetricResult(_ppm_of_float(value), value)


def score_predictions(metric: Metric, predictions: npt.NDArray[np.float64],
                      truth: npt.NDArray[np.int64] | Values) -> MetricResult:
    """Classification: ``predictions`` are probabilities ``[N, C]`` (clipped to [0, 1]),
    ``truth`` int labels. Regression: both ``[N]`` float64. All values must be finite."""
    if metric is Metric.ACCURACY:
        return accuracy(predictions, truth.astype(np.int64, copy=False))
    if metric is Metric.LOG_LOSS:
        return log_loss(predictions, truth.astype(np.int64, copy=False))
    if metric is Metric.ROC_AUC:
        return roc_auc(predictions, truth.astype(np.int64, copy=False))
    if metric is Metric.RMSE:
        return rmse(predictions, truth.astype(np.float64, copy=False))
    if metric is Metric.MAE:
        return mae(predictions, truth.astype(np.float64, copy=False))
    return r2(predictions, truth.astype(np.float64, copy=False))
