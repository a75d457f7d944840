"""Aggregation rule ``median``: each weight of the next global model is the median of the
accepted models' values of it (FedMedian). With an even count, the mean of the two middle
values, added in float64 and rounded once to float32 (deterministic: one IEEE addition
and one halving, the same on every platform).

One outlying model cannot move a weight past its neighbours' values, so a scaled or
poisoned update that is accepted pulls the model far less than under FedAvg.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np

from .coordinatewise import check_no_trim, check_stack, sorted_stacks
from .fedavg import serialize_with_weights
from .onnx_checks import ParsedModel
from .work_budget import check_close_budget

__all__ = ["VALUE_COST", "aggregate", "check"]

#: Work units per weight and accepted model at a close (``dapp.work_budget.close_work``):
#: decode, check, copy into the stack, sort, pick. Measured ~23.5 under qemu-user (256 models).
VALUE_COST: Final = 32


def check(*, trim_percent: int, max_models: int, weight_bytes: int) -> None:
    check_no_trim("median", trim_percent)
    check_stack("median", max_models=max_models, weight_bytes=weight_bytes)
    check_close_budget("median", models=max_models, values=weight_bytes // 4, value_cost=VALUE_COST)


def aggregate(
    base: ParsedModel, models: Iterable[ParsedModel], *, count: int, trim_percent: int
) -> bytes:
    middle = {}
    for name, stack in sorted_stacks(base, models, count).items():
        low = stack[(count - 1) // 2].astype(np.float64)
        high = stack[count // 2].astype(np.float64)
        middle[name] = ((low + high) / 2.0).astype(np.float32)
    return serialize_with_weights(base, middle)
