"""FedAvg as the DApp computes it (``dapp/fedavg.py``), for ``deml verify`` to recompute.

The console installs without the DApp, so it cannot import ``dapp.fedavg``; this is the same
arithmetic on the same bytes, and ``tests/test_verify.py`` checks that both give identical
bytes: each float32 weight summed in float64 in the given order (the round's accepted order),
divided once by the count and rounded once to float32, written as little-endian
``raw_data`` into a copy of the job's initial model, serialized deterministically. Only the
uniform-weight FedAvg the DApp runs at a round's close is here; the DApp's own model checks
are not repeated (the models were accepted by it already).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from onnx import ModelProto, TensorProto, numpy_helper

__all__ = ["AggregationInputError", "fedavg"]


class AggregationInputError(ValueError):
    """A model to average does not fit the job's graph (its weights differ in name or shape)."""

    code: ClassVar[str] = "aggregation_input"


def _parse(data: bytes) -> ModelProto:
    """Models here passed the DApp's checks and their CIDs: they decode."""
    return ModelProto.FromString(data)


def _float_weights(model: ModelProto) -> dict[str, npt.NDArray[np.float32]]:
    return {
        tensor.name: numpy_helper.to_array(tensor)
        for tensor in model.graph.initializer
        if tensor.data_type == TensorProto.FLOAT
    }


def fedavg(base_model: bytes, submissions: Iterable[bytes]) -> bytes:
    """The mean of ``submissions``' float weights in ``base_model``'s graph, as the DApp's
    ``fedavg(base, submissions)`` with default (equal) weights serializes it."""
    base = _parse(base_model)
    shapes = {name: array.shape for name, array in _float_weights(base).items()}
    sums = {name: np.zeros(shape, dtype=np.float64) for name, shape in shapes.items()}
    count = 0
    for number, data in enumerate(submissions):
        weights = _float_weights(_parse(data))
        for name, accumulator in sums.items():
            got = weights.get(name)
            if got is None or got.shape != shapes[name]:
                raise AggregationInputError(f"model {number}: weight {name!r} missing or reshaped")
            accumulator += np.multiply(got, 1.0, dtype=np.float64)
        count += 1
    averaged = _float_weights(base)
    if count:
        averaged = {name: (total / float(count)).astype(np.float32) for name, total in sums.items()}
    model = ModelProto()
    model.CopyFrom(base)
    for tensor in model.graph.initializer:
        if tensor.name in averaged:
            tensor.ClearField("float_data")
            tensor.raw_data = np.ascontiguousarray(averaged[tensor.name], dtype="<f4").tobytes()
    serialized: bytes = model.SerializeToString(deterministic=True)
    return serialized
