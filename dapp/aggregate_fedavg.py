"""Aggregation rule ``fedavg``: the next global model is the weight-by-weight mean of the
accepted models (``dapp.fedavg``: float64 sums in accepted order, one rounding to float32).

Streams (one model in memory at a time), so memory does not bound ``maxSubmissions``; the
close's work does (``check``: ``dapp.work_budget.check_close_budget``). Every accepted
model moves the mean: a scaled or poisoned update that still beats the baseline pulls it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .coordinatewise import check_no_trim
from .fedavg import fedavg
from .onnx_checks import ParsedModel
from .work_budget import check_close_budget

__all__ = ["VALUE_COST", "aggregate", "check"]

#: Work units per weight and accepted model at a close (``dapp.work_budget.close_work``):
#: decode, check, add in float64. Measured ~10.5 under qemu-user.
VALUE_COST: Final = 16


def check(*, trim_percent: int, max_models: int, weight_bytes: int) -> None:
    check_no_trim("fedavg", trim_percent)
    check_close_budget("fedavg", models=max_models, values=weight_bytes // 4, value_cost=VALUE_COST)


def aggregate(
    base: ParsedModel, models: Iterable[ParsedModel], *, count: int, trim_percent: int
) -> bytes:
    return fedavg(base, models)
