"""Aggregation rule ``median``: each weight of the next global model is the median of the
accepted models' values of it (FedMedian). With an even count, the mean of the two middle
values, added in float64 (exact) and rounded once to float32.

One outlying model cannot move a weight past its neighbours' values, so a scaled or
poisoned update that is accepted pulls the model far less than under FedAvg.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .coordinatewise import check_no_trim, check_stack, sorted_stacks
from .fedavg import serialize_with_weights
from .onnx_checks import ParsedModel

__all__ = ["aggregate", "check"]


def check(*, trim_percent: int, max_models: int, weight_bytes: int) -> None:
    check_no_trim("median", trim_percent)
    check_stack("median", max_models=max_models, weight_bytes=weight_bytes)


def aggregate(
    base: ParsedModel, models: Iterable[ParsedModel], *, count: int, trim_percent: int
) -> bytes:
    middle = {}
    for name, stack in sorted_stacks(base, models, count).items():
        low = stack[(count - 1) // 2].astype(np.float64)
        high = stack[count // 2].astype(np.float64)
        middle[name] = ((low + high) / 2.0).astype(np.float32)
    return serialize_with_weights(base, middle)
