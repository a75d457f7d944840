"""Metrics, and the integer scores that decide who gets paid.

Every metric is computed in float64 from the model's outputs and then turned into an
``int`` score where **higher is always better** (``docs/evaluation.md`` has the table):

- ``accuracy``  ``hits * 1_000_000 // rows``: parts per million, exact integer arithmetic.
- ``roc_auc``   ``2U * 1_000_000 // (2 * positives * negatives)``, with ``U`` the
  Mann-Whitney statistic (ties count 1/2, so ``2U`` is an integer): exact too; floats
  matter only through the *order* (and ties) of the probabilities.
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
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from deml_protocol.metrics import Metric

__all__ = [
    "LOG_LOSS_EPSILON",
    "PPM",
    "SCORE_MAX",
    "SCORE_MIN",
    "Metric",
    "MetricResult",
    "accuracy",
    "log_loss",
    "predicted_classes",
    "mae",
    "r2",
    "rmse",
    "roc_auc",
    "score_predictions",
    "twice_mann_whitney",
]

PPM: Final = 1_000_000
SCORE_MIN: Final = -(2**63)
SCORE_MAX: Final = 2**63 - 1
#: Probability floor in log-loss, so one confident miss costs at most ``-ln(1e-15)`` ≈ 34.5.
LOG_LOSS_EPSILON: Final = 1e-15

#: ``[N, C]`` float32 or float64, entries in [0, 1]; ``C == 1`` is a binary P(y = 1).
Probabilities = npt.NDArray[np.floating]
Labels = npt.NDArray[np.int64]  # [N], each in [0, C)
Values = npt.NDArray[np.float64]  # [N]


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


def _column(probabilities: Probabilities, index: int) -> npt.NDArray[np.float64]:
    return probabilities[:, index].astype(np.float64)


def _positive_scores(probabilities: Probabilities) -> Probabilities:
    """P(class 1): the only column of a ``[N, 1]`` output, else column 1 of ``[N, 2]``."""
    if probabilities.shape[1] > 2:
        raise ValueError("roc_auc is binary: probabilities must be [N, 1] or [N, 2]")
    return probabilities[:, 0] if probabilities.shape[1] == 1 else probabilities[:, 1]


def predicted_classes(probabilities: Probabilities) -> npt.NDArray[np.intp]:
    """The first class holding the row's maximum; one column ``p`` predicts 1 iff p > 0.5.

    (``p > 0.5`` is exactly "``p`` beats ``1 - p``", a tie at 0.5 going to class 0 as argmax
    would.) Two columns compare directly, since a row-wise argmax is slow on narrow rows.
    """
    if probabilities.shape[1] == 1:
        return (probabilities[:, 0] > 0.5).astype(np.intp)
    if probabilities.shape[1] == 2:
        return (probabilities[:, 1] > probabilities[:, 0]).astype(np.intp)
    predicted: npt.NDArray[np.intp] = np.argmax(probabilities, axis=1)
    return predicted


def accuracy(probabilities: Probabilities, labels: Labels) -> MetricResult:
    """Share of rows whose :func:`predicted_classes` equals the label; exact ppm."""
    hits = int(np.count_nonzero(predicted_classes(probabilities) == labels))
    rows = len(labels)
    return MetricResult(hits * PPM // rows, hits / rows)


def _true_class_probability(probabilities: Probabilities, labels: Labels) -> Values:
    """p(true class) in float64, each row normalised to sum 1 so outputs cannot inflate it.

    One column ``p`` stands for ``[1 - p, p]``, which sums to 1 already. A row summing to 0
    gives 0.
    """
    if probabilities.shape[1] == 1:
        positive = _column(probabilities, 0)
        return np.where(labels == 1, positive, 1.0 - positive)
    rows = len(labels)
    true_class = probabilities[np.arange(rows), labels].astype(np.float64)
    totals = _column(probabilities, 0)
    for index in range(1, probabilities.shape[1]):
        totals += probabilities[:, index]
    normalised: Values = np.divide(true_class, totals, out=np.zeros(rows), where=totals > 0)
    return normalised


def log_loss(probabilities: Probabilities, labels: Labels) -> MetricResult:
    """Mean ``-ln p(true class)``, p floored at :data:`LOG_LOSS_EPSILON`."""
    p = _true_class_probability(probabilities, labels)
    np.clip(p, LOG_LOSS_EPSILON, 1.0, out=p)
    value = float(-np.mean(np.log(p)))
    return MetricResult(_negative_micro(value), value)


def twice_mann_whitney(scores: npt.NDArray[np.floating], labels: Labels) -> tuple[int, int, int]:
    """(2U, positives, negatives): U counts (positive, negative) pairs ranked right, ties 1/2.

    ``scores`` must be >= 0 (probabilities). One sort of integer keys, ``bits(score) << 1 |
    is_positive`` (the bits of a non-negative float order like the float; float32 keys fit
    in 32 bits), puts the scores in order with, inside a tie, negatives first. A positive at
    sorted index ``i`` then has ``i - (positives before it)`` negatives at or below it;
    subtracting the negatives it merely ties gives those strictly below, so

        2U = 2 * (sum of positive indices - P(P-1)/2) - sum over tie groups of pos * neg.

    Sorting integers leaves exactly one possible result, so no sorting algorithm, SIMD
    width or platform can change the integers.
    """
    unsigned: type[np.unsignedinteger[Any]]
    if scores.dtype == np.float32:
        values, unsigned = scores + np.float32(0.0), np.uint32  # -0.0 becomes +0.0
    else:
        values, unsigned = np.asarray(scores, dtype=np.float64) + 0.0, np.uint64
    if values.size and not values.min() >= 0.0:
        raise ValueError("twice_mann_whitney needs non-negative, non-NaN scores")
    bits: npt.NDArray[np.unsignedinteger[Any]] = values.view(unsigned)
    keys = np.sort((bits << unsigned(1)) | (labels == 1))
    sorted_positive = (keys & unsigned(1)).astype(bool)
    positives = int(np.count_nonzero(sorted_positive))
    twice_u = 2 * int(np.flatnonzero(sorted_positive).sum()) - positives * (positives - 1)
    twice_u -= _tied_pairs(keys >> unsigned(1), sorted_positive)
    return twice_u, positives, len(keys) - positives


def _tied_pairs(
    sorted_values: npt.NDArray[np.unsignedinteger[Any]], sorted_positive: npt.NDArray[np.bool_]
) -> int:
    """Sum over groups of equal scores of (positives x negatives) in the group.

    Only members of groups of two or more can contribute; they are few, so the group
    arithmetic runs on them alone.
    """
    is_tied = sorted_values[1:] == sorted_values[:-1]
    if not is_tied.any():
        return 0
    in_group = np.zeros(len(sorted_values), dtype=bool)
    in_group[1:] = is_tied
    in_group[:-1] |= is_tied
    values, is_positive = sorted_values[in_group], sorted_positive[in_group]
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    sizes = np.diff(np.append(starts, len(values)))
    positives = np.add.reduceat(is_positive.astype(np.int64), starts)
    return int(np.sum(positives * (sizes - positives)))


def roc_auc(probabilities: Probabilities, labels: Labels) -> MetricResult:
    """Binary ROC AUC of P(class 1), exact ppm from :func:`twice_mann_whitney`.

    Needs both classes present (``dapp.shards`` checks it at load).
    """
    twice_u, positives, negatives = twice_mann_whitney(_positive_scores(probabilities), labels)
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


def score_predictions(
    metric: Metric, predictions: npt.NDArray[np.floating], truth: npt.NDArray[np.int64] | Values
) -> MetricResult:
    """Classification: ``predictions`` are probabilities ``[N, C]`` (clipped to [0, 1]),
    ``truth`` int labels below C (2 if C == 1). Regression: both ``[N]``. All finite."""
    if metric is Metric.ACCURACY:
        return accuracy(predictions, truth.astype(np.int64, copy=False))
    if metric is Metric.LOG_LOSS:
        return log_loss(predictions, truth.astype(np.int64, copy=False))
    if metric is Metric.ROC_AUC:
        return roc_auc(predictions, truth.astype(np.int64, copy=False))
    if metric is Metric.RMSE:
        return rmse(predictions.astype(np.float64), truth.astype(np.float64, copy=False))
    if metric is Metric.MAE:
        return mae(predictions.astype(np.float64), truth.astype(np.float64, copy=False))
    if metric is Metric.R2:
        return r2(predictions.astype(np.float64), truth.astype(np.float64, copy=False))
    raise ValueError(f"no scoring rule for metric {metric!r}")  # a Metric added without one
