"""Weight by weight, the accepted models' values in ascending order: what the robust
aggregation rules (``aggregate_median``, ``aggregate_trimmed_mean``) reduce.

Unlike FedAvg these rules see every model at once, so the stacks hold ``count x`` the
model's weights: :func:`check_stack` bounds that at posting (``maxSubmissions`` models).
Deterministic on every platform: -0.0 is read as 0.0 and weights are finite (checked at
reveal), so the values are totally ordered and any correct sort gives the same array,
whatever algorithm or vector width numpy picks.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np

from deml_protocol.errors import InvalidJobSpec

from .onnx_checks import FloatArray, ParsedModel, check_weights_match

__all__ = ["MAX_STACK_BYTES", "check_no_trim", "check_stack", "sorted_stacks"]

#: Most bytes of stacked weights (``maxSubmissions x`` the model's float32 weights) a robust
#: rule may hold. The sort is in place; the reduction adds a float64 copy of one model.
MAX_STACK_BYTES: Final = 64 * 1024 * 1024


def check_stack(rule: str, *, max_models: int, weight_bytes: int) -> None:
    """At posting: every accepted model of a round must fit in the stack at once."""
    need = max_models * weight_bytes
    if need > MAX_STACK_BYTES:
        raise InvalidJobSpec(
            f"{rule} holds every accepted model at once: maxSubmissions {max_models} x "
            f"{weight_bytes} bytes of weights is {need}; at most {MAX_STACK_BYTES}: "
            "lower maxSubmissions or use fedavg"
        )


def check_no_trim(rule: str, trim_percent: int) -> None:
    if trim_percent:
        raise InvalidJobSpec(
            f"trimPercent is {trim_percent}; {rule} takes 0 (only trimmed_mean trims)"
        )


def sorted_stacks(
    base: ParsedModel, models: Iterable[ParsedModel], count: int
) -> dict[str, FloatArray]:
    """Per weight tensor, a ``[count, *shape]`` float32 array sorted along the first axis.
    Models are drawn one at a time and copied in, so only the stacks stay in memory."""
    stacks = {
        name: np.empty((count, *array.shape), dtype=np.float32)
        for name, array in base.weights.items()
    }
    drawn = 0
    for model in models:
        if drawn >= count:
            raise ValueError(f"more than {count} models to aggregate")
        check_weights_match(base, model)
        for name, stack in stacks.items():
            stack[drawn] = model.weights[name]
        drawn += 1
        del model
    if drawn != count:
        raise ValueError(f"{drawn} models to aggregate, expected {count}")
    for stack in stacks.values():
        stack += np.float32(0.0)  # -0.0 + 0.0 == +0.0: one spelling of zero
        stack.sort(axis=0)
    return stacks
