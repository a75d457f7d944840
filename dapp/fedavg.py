"""FedAvg: the next global model is the elementwise mean of the accepted submissions.

Bit-for-bit reproducible, on every validator and across platforms: each weight is summed in
float64 in the *given* order (the round's accepted order), multiplied by an integer weight,
divided once by the total and rounded once to float32. Elementwise IEEE multiply, add,
divide and the float64 -> float32 cast are exactly specified, so unlike a BLAS call or a
reduction nothing here depends on the CPU or vector width. The result is the base model's
graph with new initializer values, serialized deterministically: same inputs in the same
order, same bytes, same CID.

Streaming: submissions are drawn one at a time, checked, added into the float64
accumulators and dropped, so memory is the accumulators plus one model whatever their number
(256 submissions of a 16 MiB model must not all be held at once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sized
from typing import Final

import numpy as np
import numpy.typing as npt
from onnx import ModelProto

from deml_protocol.errors import AggregationWeightsInvalid

from .onnx_checks import (
    FloatArray,
    ParsedModel,
    check_same_graph,
    check_weights_match,
    parse_model,
)

__all__ = ["fedavg", "serialize_with_weights"]

Float64Array = npt.NDArray[np.float64]

#: Integer weights stay below 2**53 so each converts to float64 exactly.
MAX_AGGREGATION_WEIGHT: Final = 2**53


def _checked_weight(weight: object) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int):
        raise AggregationWeightsInvalid(f"weight {weight!r} is not an int")
    if not 0 <= weight < MAX_AGGREGATION_WEIGHT:
        raise AggregationWeightsInvalid(
            f"weight {weight} out of range; accepted: 0..{MAX_AGGREGATION_WEIGHT - 1}"
        )
    return weight


def _check_weights(weights: Iterable[int], submissions: Iterable[object]) -> list[int]:
    """All weights, checked before any submission is parsed (a few ints, not models)."""
    checked = [_checked_weight(weight) for weight in weights]
    if isinstance(submissions, Sized) and len(submissions) != len(checked):
        raise _count_mismatch(len(checked), len(submissions))
    if sum(checked) == 0:
        raise AggregationWeightsInvalid("all weights are 0; at least one must be positive")
    return checked


def _count_mismatch(weights: int, submissions: int | str) -> AggregationWeightsInvalid:
    return AggregationWeightsInvalid(
        f"{weights} weights for {submissions} submissions; accepted: one per submission"
    )


def _as_checked(base: ParsedModel, submission: bytes | ParsedModel) -> ParsedModel:
    if isinstance(submission, ParsedModel):
        check_weights_match(base, submission)
        return submission
    return check_same_graph(base, submission)


def _accumulate(
    base: ParsedModel, submissions: Iterable[bytes | ParsedModel], weights: list[int] | None
) -> tuple[dict[str, Float64Array], int]:
    """Per weight tensor ``sum_i(w_i * x_i)`` in float64, in the given order, and ``sum(w)``.

    One submission is parsed, checked, added and dropped before the next is drawn, so memory
    holds the accumulators and one model, however many submissions there are.
    """
    sums = {name: np.zeros(array.shape, dtype=np.float64) for name, array in base.weights.items()}
    count = total = 0
    for submission in submissions:
        if weights is not None and count >= len(weights):
            raise _count_mismatch(len(weights), f"more than {len(weights)}")
        weight = 1 if weights is None else weights[count]
        model = _as_checked(base, submission)
        if weight:
            for name, accumulator in sums.items():
                accumulator += np.multiply(model.weights[name], float(weight), dtype=np.float64)
        count, total = count + 1, total + weight
        del model, submission  # before the next one is drawn
    if weights is not None and count != len(weights):
        raise _count_mismatch(len(weights), count)
    return sums, total


def _average(sums: dict[str, Float64Array], total: int) -> dict[str, FloatArray]:
    """Each sum divided once by ``sum(w)`` and rounded once to float32."""
    averaged: dict[str, FloatArray] = {}
    for name in list(sums):
        accumulator = sums.pop(name)
        accumulator /= float(total)
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


def fedavg(
    base_model: bytes | ParsedModel,
    submissions: Iterable[bytes | ParsedModel],
    weights: Iterable[int] | None = None,
) -> bytes:
    """Average ``submissions`` (each checked against ``base_model``'s graph) into new bytes.

    ``submissions`` may be any iterable, e.g. a generator that reads one stored model at a
    time: they are consumed in order, one at a time, and none is kept. ``weights`` are
    non-negative integers, one per submission (default: all 1), checked before any
    submission is parsed; a count mismatch is found up front when ``submissions`` is sized,
    else when it runs out. With no submissions the result is the base model itself,
    re-serialized in the same canonical form. Integer initializers (graph structure) are
    kept from the base.
    """
    base = base_model if isinstance(base_model, ParsedModel) else parse_model(base_model)
    checked_weights = None if weights is None else _check_weights(weights, submissions)
    sums, total = _accumulate(base, submissions, checked_weights)
    if total == 0:  # no submissions (zero weights are refused above)
        return serialize_with_weights(base, base.weights)
    return serialize_with_weights(base, _average(sums, total))
