"""ONNX models built from numpy weights: what sponsors post and clients train.

Every model here has one float32 input ``"X"`` of shape ``[N, d]`` and one output, and uses
only the operators the DApp allows (``docs/evaluation.md``). Classifiers output
*probabilities*, never logits:

- :func:`logistic_regression` outputs ``"probabilities"`` of shape ``[N, 1]``: P(y = 1).
  One column keeps the graph free of float constants (``1 - p`` would need a ``1.0``
  initializer, and every float initializer is a weight a client may change).
- :func:`softmax_regression` and :func:`mlp` output ``"probabilities"`` of shape ``[N, C]``.
- :func:`linear_regression` (and ``mlp(..., head="linear")``) output ``"prediction"``,
  shape ``[N, k]``.

Weights are laid out so the graph computes ``X @ W + b`` (``Gemm`` without transposes): a
scikit-learn ``coef_`` of shape ``[C, d]`` goes in as ``coef_.T``.

:func:`get_weights` and :func:`with_weights` are how a client trains: read the initializers,
update them, write them back into the *same* graph. Serialization is deterministic, so the same
weights always give the same bytes and the same CID. This module is host-side and must not
import ``dapp``; the DApp has its own reader (``dapp.onnx_checks``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "INPUT_NAME",
    "IR_VERSION",
    "OPSET",
    "get_weights",
    "linear_regression",
    "logistic_regression",
    "mlp",
    "softmax_regression",
    "with_weights",
]

#: The default-domain opset every model here imports. The DApp accepts a range around it.
OPSET: Final = 17
#: ONNX IR version 8 is the one that goes with opset 17; ONNX Runtime 1.21 reads it.
IR_VERSION: Final = 8
INPUT_NAME: Final = "X"
_PRODUCER: Final = "deml-model-zoo"

ArrayLike = npt.ArrayLike
Head = Literal["softmax", "linear"]


def _f32(values: ArrayLike, shape: tuple[int, ...], what: str) -> npt.NDArray[np.float32]:
    """Weights are float32 in the graph; a wrong shape is a caller bug, named here."""
    array = np.asarray(values, dtype=np.float32)
    if array.size != int(np.prod(shape)):
        raise ValueError(
            f"{what}: expected {shape} ({int(np.prod(shape))} values), got shape {array.shape}"
        )
    return np.ascontiguousarray(array.reshape(shape))


def _gemm(
    index: int, source: str, weight: npt.NDArray[np.float32], bias: npt.NDArray[np.float32]
) -> tuple[onnx.NodeProto, list[TensorProto], str]:
    """One dense layer ``source @ W + b``; names are stable so clients can find weights."""
    w_name, b_name, out = f"W{index}", f"B{index}", f"dense{index}"
    node = helper.make_node("Gemm", [source, w_name, b_name], [out], name=f"gemm{index}")
    inits = [numpy_helper.from_array(weight, w_name), numpy_helper.from_array(bias, b_name)]
    return node, inits, out


def _model(
    nodes: list[onnx.NodeProto], inits: list[TensorProto], n_features: int, output: tuple[str, int]
) -> bytes:
    """Wrap a graph with the pinned opset and IR version, checked by onnx's own checker."""
    out_name, out_width = output
    graph = helper.make_graph(
        nodes,
        "deml",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", out_width])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=_PRODUCER,
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model)
    serialized: bytes = model.SerializeToString(deterministic=True)
    return serialized


def linear_regression(coef: ArrayLike, intercept: ArrayLike = 0.0) -> bytes:
    """``prediction = X @ coef + intercept``; ``coef`` is ``[d]`` (one target) or ``[d, k]``."""
    coef_array = np.asarray(coef, dtype=np.float32)
    d = coef_array.shape[0]
    k = 1 if coef_array.ndim == 1 else coef_array.shape[1]
    node, inits, out = _gemm(
        0,
        INPUT_NAME,
        _f32(coef_array, (d, k), "coef"),
        _f32(np.broadcast_to(intercept, (k,)), (k,), "intercept"),
    )
    node.output[0] = "prediction"
    return _model([node], inits, d, ("prediction", k))


def logistic_regression(coef: ArrayLike, intercept: float = 0.0) -> bytes:
    """Binary classifier: ``probabilities = sigmoid(X @ coef + intercept)``, shape ``[N, 1]``."""
    coef_array = np.asarray(coef, dtype=np.float32).reshape(-1)
    d = coef_array.shape[0]
    node, inits, logit = _gemm(
        0, INPUT_NAME, _f32(coef_array, (d, 1), "coef"), _f32([intercept], (1,), "intercept")
    )
    sigmoid = helper.make_node("Sigmoid", [logit], ["probabilities"], name="sigmoid")
    return _model([node, sigmoid], inits, d, ("probabilities", 1))


def softmax_regression(coef: ArrayLike, intercept: ArrayLike | None = None) -> bytes:
    """Multinomial classifier: ``softmax(X @ coef + intercept)``; ``coef`` is ``[d, C]``."""
    coef_array = np.asarray(coef, dtype=np.float32)
    if coef_array.ndim != 2 or coef_array.shape[1] < 2:
        raise ValueError(f"coef must be [d, C] with C >= 2, got shape {coef_array.shape}")
    d, c = coef_array.shape
    bias = np.zeros(c) if intercept is None else intercept
    node, inits, logits = _gemm(
        0, INPUT_NAME, _f32(coef_array, (d, c), "coef"), _f32(bias, (c,), "intercept")
    )
    softmax = helper.make_node("Softmax", [logits], ["probabilities"], name="softmax", axis=1)
    return _model([node, softmax], inits, d, ("probabilities", c))


def _init_layers(
    layer_sizes: Sequence[int], seed: int | None
) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
    """He-uniform weights (suits Relu), zero biases; seeded so a job's model is reproducible."""
    rng = np.random.default_rng(seed)
    layers: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = []
    for fan_in, fan_out in zip(layer_sizes[:-1], layer_sizes[1:], strict=True):
        limit = np.sqrt(6.0 / fan_in)
        weight = rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
        layers.append((weight, np.zeros(fan_out, dtype=np.float32)))
    return layers


def mlp(layer_sizes: Sequence[int], *, seed: int | None = 0, head: Head = "softmax") -> bytes:
    """Dense network ``Gemm → Relu → … → Gemm → Softmax`` (or a linear head for regression).

    ``layer_sizes`` runs from inputs to outputs, e.g. ``[30, 64, 64, 2]``. Weights ``W0, B0,
    W1, …`` start He-uniform from ``seed``; use :func:`with_weights` to set trained ones.
    """
    sizes = [int(s) for s in layer_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer_sizes needs at least two positive sizes, got {sizes}")
    if head == "softmax" and sizes[-1] < 2:
        raise ValueError("a softmax head needs at least 2 output classes")
    nodes: list[onnx.NodeProto] = []
    inits: list[TensorProto] = []
    source = INPUT_NAME
    layers = _init_layers(sizes, seed)
    for index, (weight, bias) in enumerate(layers):
        node, layer_inits, source = _gemm(index, source, weight, bias)
        nodes.append(node)
        inits.extend(layer_inits)
        if index < len(layers) - 1:
            nodes.append(helper.make_node("Relu", [source], [f"relu{index}"], name=f"relu{index}"))
            source = f"relu{index}"
    out_name = "probabilities" if head == "softmax" else "prediction"
    if head == "softmax":
        nodes.append(helper.make_node("Softmax", [source], [out_name], name="softmax", axis=1))
    else:
        nodes[-1].output[0] = out_name
    return _model(nodes, inits, sizes[0], (out_name, sizes[-1]))


def get_weights(model_bytes: bytes) -> dict[str, npt.NDArray[Any]]:
    """Every initializer as a fresh (writable) array, in graph order."""
    model = onnx.load_from_string(model_bytes)
    return {t.name: numpy_helper.to_array(t).copy() for t in model.graph.initializer}


def with_weights(model_bytes: bytes, weights: Mapping[str, ArrayLike]) -> bytes:
    """The same graph with new initializer values; names not given keep their values.

    Values are cast to each initializer's own dtype and must have its exact shape, so the
    result passes the DApp's same-graph check (if finite). Data is written as little-endian
    ``raw_data`` and the message serialized deterministically: equal weights, equal bytes.
    """
    model = onnx.load_from_string(model_bytes)
    by_name = {t.name: t for t in model.graph.initializer}
    unknown = [name for name in weights if name not in by_name]
    if unknown:
        raise KeyError(f"no initializer named {unknown}; the graph has {list(by_name)}")
    for name, values in weights.items():
        tensor = by_name[name]
        dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
        array = np.asarray(values)
        if array.shape != tuple(tensor.dims):
            raise ValueError(f"{name}: expected shape {tuple(tensor.dims)}, got {array.shape}")
        fresh = numpy_helper.from_array(
            np.ascontiguousarray(array, dtype=dtype.newbyteorder("<")), name
        )
        tensor.CopyFrom(fresh)
    serialized: bytes = model.SerializeToString(deterministic=True)
    return serialized
