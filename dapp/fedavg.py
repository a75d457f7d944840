"""FedAvg: the next global model is the elementwise mean of the accepted submissions.

Bit-for-bit reproducible, on every validator and across platforms: each weight is summed in
float64 in the *given* order (the round's accepted order), multiplied by an integer weight,
divided once by the total and rounded once to float32. Elementwise IEEE multiply, add,
divide and the float64 -> float32 cast are exactly specified, so unlike a BLAS call or a
reduction nothing here depends on the CPU or vector width. The result is the base model's
graph with new initializer values, serialized deterministically: same inputs in the same
order, same bytes, same CID.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
from onnx import ModelProto

from .errors import Rejected
from .onnx_checks import (
    FloatArray,
    ParsedModel,
    check_same_graph,
    check_weights_match,
    parse_model,
)

__all__ = ["AggregationWeightsInvalid", "fedavg", "serialize_with_weights"]

#: Integer weights stay below 2**53 so each converts to float64 exactly.
MAX_AGGREGATION_WEIGHT: Final = 2**53


class AggregationWeightsInvalid(Rejected):
    code = "aggregation_weights_invalid"


def _check_weights(weights: Sequence[int] | None, count: int) -> list[int]:
    if weights is None:
        return [1] * count
    checked = list(weights)
    if len(checked) != count:
        raise AggregationWeightsInvalid(f"{len(checked)} weights for {count} submissions; "
                                        "accepted: one per submission")
    for weight in checked:
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise AggregationWeightsInvalid(f"weight {weight!r} is not an int")
        if not 0 <= weight < MAX_AGGREGATION_WEIGHT:
            raise AggregationWeightsInvalid(f"weight {weight} out of range; accepted: "
                                            f"0..{MAX_AGGREGATION_WEIGHT - 1}")
    if sum(checked) == 0:
        raise AggregationWeightsInvalid("all weights are 0; at least one must be positive")
    return checked


def _as_checked(base: ParsedModel, submission: bytes | ParsedModel) -> ParsedModel:
    if isinstance(submission, ParsedModel):
        check_weights_match(base, submission)
        return submission
    return check_same_graph(base, submission)


def _average(base: ParsedModel, models: Sequence[ParsedModel],
             weights: Sequence[int]) -> dict[str, FloatArray]:
    """Per initializer: ``sum_i(w_i * x_i)`` in float64, in order, ``/ sum(w)``, to float32."""
    total = float(sum(weights))
    averaged: dict[str, FloatArray] = {}
    for name, template in base.weights.items():
        accumulator = np.zeros(template.shape, dtype=np.float64)
        for model, weight in zip(models, weights, strict=True):
            if weight:
                accumulator += np.multiply(model.weights[name], float(weight), dtype=np.float64)
        accumulator /= total
        averaged[name] = accumulator.astype(np.float32)
    return averaged


def serialize_with_weights(base: ParsedModel, weights: Mapping[str, FloatArray]) -> bytes:
    """``base``'s model with the given float32 initializer values, as little-endian raw data."""
    model = ModelProto()
    model.CopyFrom(base.graph)
    for tensor in model.graph.initializer:
        if tensor.name in weights:
            tensor.ClearField("float_data")
            tensor.raw_data = np.ascontiguousarray(weights[tensor.name], dtype="<f4").tobytes()
    serialized: bytes = model.SerializeToString(deterministic=True)
    return serialized


def fedavg(base_model: bytes | ParsedModel, submissions: Sequence[bytes | ParsedModel],
           weights: Sequence[int] | None = None) -> bytes:
    """Average ``submissions`` (each checked against ``base_model``'s graph) into new bytes.

    ``weights`` are non-negative integers, one per submission (default: all 1). With no
    submissions the result is the base model itself, re-serialized in the same canonical
    form. Integer initializers (graph structure) are kept from the base.
    """
    base = base_model if isinstance(base_model, ParsedModel) else parse_model(base_model)
    checked_weights = _check_weights(weights, len(submissions))
    models = [_as_checked(base, submission) for submission in submissions]
    if not models:
        return serialize_with_weights(base, base.weights)
    return serialize_with_weights(base, _average(base, models, checked_weights))
