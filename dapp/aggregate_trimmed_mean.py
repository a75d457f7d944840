"""Aggregation rule ``trimmed_mean``: for each weight, the accepted models' values are
sorted, ``floor(count * trimPercent / 100)`` are cut at each end, and the rest averaged
(FedTrimmedAvg): summed in float64 in ascending order, divided once, rounded once to float32.

``trimPercent`` is 1 to 49, so at least one value is always kept. With few accepted models
the cut may be 0 (3 models at 20%): then it is FedAvg's mean.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np

from deml_protocol.errors import InvalidJobSpec

from .coordinatewise import check_stack, sorted_stacks
from .fedavg import serialize_with_weights
from .onnx_checks import ParsedModel
from .work_budget import check_close_budget

__all__ = ["MAX_TRIM_PERCENT", "VALUE_COST", "aggregate", "check"]

MAX_TRIM_PERCENT: Final = 49
#: Work units per weight and accepted model at a close (``dapp.work_budget.close_work``):
#: decode, check, copy into the stack, sort, add the kept rows (most at a 1% trim).
#: Measured ~27.7 under qemu-user (256 models, 10% trim).
VALUE_COST: Final = 40


def check(*, trim_percent: int, max_models: int, weight_bytes: int) -> None:
    if not 1 <= trim_percent <= MAX_TRIM_PERCENT:
        raise InvalidJobSpec(
            f"trimPercent is {trim_percent}; trimmed_mean cuts 1 to {MAX_TRIM_PERCENT} "
            "percent of the models at each end"
        )
    check_stack("trimmed_mean", max_models=max_models, weight_bytes=weight_bytes)
    check_close_budget(
        "trimmed_mean", models=max_models, values=weight_bytes // 4, value_cost=VALUE_COST
    )


def aggregate(
    base: ParsedModel, models: Iterable[ParsedModel], *, count: int, trim_percent: int
) -> bytes:
    cut = count * trim_percent // 100
    means = {}
    for name, stack in sorted_stacks(base, models, count).items():
        total = np.zeros(stack.shape[1:], dtype=np.float64)
        for row in stack[cut : count - cut]:  # elementwise adds, in order: no reduction tree
            total += row.astype(np.float64)
        total /= float(count - 2 * cut)
        means[name] = total.astype(np.float32)
    return serialize_with_weights(base, means)
