"""Aggregation rule ``fedavg``: the next global model is the weight-by-weight mean of the
accepted models (``dapp.fedavg``: float64 sums in accepted order, one rounding to float32).

Streams (one model in memory at a time), so any ``maxSubmissions`` fits. Every accepted
model moves the mean: a scaled or poisoned update that still beats the baseline pulls it.
"""

from __future__ import annotations

from collections.abc import Iterable

from .coordinatewise import check_no_trim
from .fedavg import fedavg
from .onnx_checks import ParsedModel

__all__ = ["aggregate", "check"]


def check(*, trim_percent: int, max_models: int, weight_bytes: int) -> None:
    check_no_trim("fedavg", trim_percent)


def aggregate(
    base: ParsedModel, models: Iterable[ParsedModel], *, count: int, trim_percent: int
) -> bytes:
    return fedavg(base, models)
