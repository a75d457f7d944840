"""What an ONNX model must look like before the DApp spends cycles on it.

Two entry points, both bytes in and a :class:`ParsedModel` out, each parsing the bytes once:

- :func:`parse_model` validates a model on its own: a job's initial model, or any model sent
  to ``evaluate``. Size bound, protobuf decode, at most ``MAX_NODES`` nodes, each feeding the
  output; allowed operators only, no custom domains, functions, subgraphs, sparse or
  external data; one float32 input ``[N, d]``, one float output; float32 weights (finite)
  and int64 constants only, at most ``MAX_INT64_ELEMENTS`` of them in all.
- :func:`check_same_graph` validates a submission against the job's already-validated
  graph: everything but the float initializer *values* must be identical, so a submission
  passes every structural rule by construction and only its weights are new.

The ``ParsedModel`` is shared with ``dapp.evaluation`` (session creation) and
``dapp.fedavg`` (aggregation), so no step decodes the model a second time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from google.protobuf.message import DecodeError
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto

from deml_protocol.errors import (
    GraphMismatch,
    InitializerMismatch,
    ModelFeatureNotAllowed,
    ModelIoInvalid,
    ModelTooLarge,
    ModelUnparseable,
    NonFiniteWeights,
    OperatorNotAllowed,
    TooManyNodes,
)

__all__ = [
    "ALLOWED_OPERATORS",
    "MAX_INT64_ELEMENTS",
    "MAX_TYPED_ELEMENTS",
    "MAX_MODEL_BYTES",
    "MAX_NODES",
    "ParsedModel",
    "check_same_graph",
    "check_weights_match",
    "parse_model",
]

#: Bytes of one serialized model. 16 MiB is ~4M float32 weights, far past what the work
#: budget lets any shard evaluate, yet small beside the machine's RAM.
MAX_MODEL_BYTES: Final = 16 * 1024 * 1024

#: Nodes in one graph: an MLP needs two per layer (Gemm, activation), so 64 is 32 layers.
#: Bounds graph size where weights do not (K MatMuls may all reuse one weight).
MAX_NODES: Final = 64

#: Elements of all int64 initializers together. They are graph structure (``Reshape``
#: shapes: a rank-2 shape needs 2). Shape inference runs before the work budget is known
#: and walks them: a 1,000,000-element constant fed through 63 ``Add`` nodes cost 2 s there
#: (29 s and 4.6 GiB with data propagation, which ``dapp.work_budget`` no longer asks for).
MAX_INT64_ELEMENTS: Final = 64

#: Structure that ONNX shape inference and the template copy walk before the work budget is
#: known, each bounded by what the allowed operators need: inputs and outputs per node (Gemm
#: and Clip take 3), attributes per node and values per list attribute (none needs a list),
#: declared ``value_info`` entries (one per node output) and initializers (one per node input),
#: the rank of declared tensors (the rank <= 2 rule itself is checked on the inferred shapes,
#: as ``model_invalid``; this only bounds what inference is handed). Unbounded, a 16 MiB model
#: spent 0.2-1.4 s there (4M node inputs, 300k value_info entries, a 1M-rank declaration).
MAX_NODE_INPUTS: Final = 3
MAX_ATTRIBUTES: Final = 8
MAX_ATTRIBUTE_VALUES: Final = 16
MAX_VALUE_INFOS: Final = MAX_NODES
MAX_INITIALIZERS: Final = MAX_NODE_INPUTS * MAX_NODES
MAX_DECLARED_RANK: Final = 8
#: Elements stored in the typed ``float_data``/``int64_data`` fields instead of ``raw_data``
#: (``numpy_helper.from_array`` writes ``raw_data``): each is a Python object to convert,
#: ~120 ns apiece, so 16 MiB of them took 0.49 s. 65,536 bound that to ~8 ms.
MAX_TYPED_ELEMENTS: Final = 65_536

#: Default-domain operators a graph may use: enough for linear, logistic and softmax
#: regression and dense networks, nothing with control flow, randomness or variable cost.
ALLOWED_OPERATORS: Final = frozenset(
    {
        "Gemm",
        "MatMul",
        "Add",
        "Sub",
        "Mul",
        "Div",
        "Relu",
        "LeakyRelu",
        "Sigmoid",
        "Tanh",
        "Softmax",
        "Clip",
        "Identity",
        "Reshape",
        "Flatten",
    }
)

_DEFAULT_DOMAINS: Final = frozenset({"", "ai.onnx"})
_OPSETS: Final = range(13, 22)  # ONNX Runtime 1.21 implements all of these
_IR_VERSIONS: Final = range(7, 11)  # IR 7 (opset 13) .. IR 10 (onnx 1.17's newest)
_WEIGHT_TYPE: Final = TensorProto.FLOAT
_DTYPES: Final[dict[int, np.dtype[Any]]] = {
    TensorProto.FLOAT: np.dtype("<f4"),
    TensorProto.INT64: np.dtype("<i8"),
}
_SCALAR_ATTRIBUTES: Final = frozenset(
    {
        AttributeProto.FLOAT,
        AttributeProto.INT,
        AttributeProto.STRING,
        AttributeProto.FLOATS,
        AttributeProto.INTS,
        AttributeProto.STRINGS,
    }
)


FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, eq=False)
class ParsedModel:
    """A decoded, validated model. Protos are shared, never mutated; arrays are read-only.

    ``weights`` are the float32 initializers (what training changes), ``constants`` the
    int64 ones (shapes for ``Reshape``: graph structure, never averaged or changed).
    ``graph`` is the validated structure the weights fit: the model's own ``proto`` from
    :func:`parse_model`, the *job's* from :func:`check_same_graph`.
    """

    proto: ModelProto
    graph: ModelProto
    input_name: str
    n_features: int
    output_name: str
    weights: Mapping[str, FloatArray]
    constants: Mapping[str, IntArray]

    @property
    def params(self) -> int:
        """Element count of all initializers (reported; the work budget uses the graph)."""
        return sum(a.size for a in self.weights.values()) + sum(
            a.size for a in self.constants.values()
        )


def _decode(model_bytes: bytes, max_bytes: int) -> ModelProto:
    if len(model_bytes) > max_bytes:
        raise ModelTooLarge(f"model is {len(model_bytes)} bytes; at most {max_bytes} accepted")
    try:
        proto = ModelProto.FromString(model_bytes)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelUnparseable(f"not an ONNX ModelProto ({exc}); send `onnx.save` bytes") from exc
    if not proto.HasField("graph") or not proto.graph.node:
        raise ModelUnparseable("decoded, but holds no graph nodes; send an ONNX model")
    return proto


def _check_model_features(proto: ModelProto) -> None:
    """Reject everything outside the plain single-graph, default-domain subset of ONNX."""
    if len(proto.graph.node) > MAX_NODES:
        raise TooManyNodes(f"{len(proto.graph.node)} nodes; at most {MAX_NODES} accepted")
    for index, node in enumerate(proto.graph.node):
        _check_node(index, node)
    if proto.ir_version not in _IR_VERSIONS:
        raise ModelFeatureNotAllowed(
            f"IR version {proto.ir_version}; accepted {_IR_VERSIONS.start}..{_IR_VERSIONS.stop - 1}"
        )
    opsets = [(o.domain, o.version) for o in proto.opset_import]
    if len(opsets) != 1 or opsets[0][0] not in _DEFAULT_DOMAINS or opsets[0][1] not in _OPSETS:
        raise ModelFeatureNotAllowed(
            f"opset imports {opsets}; accepted: only the default "
            f"domain, version {_OPSETS.start}..{_OPSETS.stop - 1}"
        )
    if proto.functions or proto.training_info:
        raise ModelFeatureNotAllowed("model-local functions and training info are not accepted")
    if proto.graph.sparse_initializer:
        raise ModelFeatureNotAllowed("sparse initializers are not accepted; use dense ones")
    _check_declarations(proto.graph)


def _check_declarations(graph: GraphProto) -> None:
    """Few declarations of small rank, and little data outside ``raw_data``.

    (Graph inputs and outputs: ``_check_io``, which refuses a rank over 2 first.)
    """
    if len(graph.value_info) > MAX_VALUE_INFOS or len(graph.initializer) > MAX_INITIALIZERS:
        raise ModelFeatureNotAllowed(
            f"{len(graph.value_info)} value_info entries and {len(graph.initializer)} "
            f"initializers; accepted: at most {MAX_VALUE_INFOS} and {MAX_INITIALIZERS}"
        )
    ranks = [len(v.type.tensor_type.shape.dim) for v in graph.value_info]
    ranks += [len(t.dims) for t in graph.initializer]
    if max(ranks, default=0) > MAX_DECLARED_RANK:
        raise ModelFeatureNotAllowed(
            f"a declared tensor or initializer of rank {max(ranks)}; accepted: rank <= "
            f"{MAX_DECLARED_RANK} (and every tensor a node produces rank <= 2)"
        )
    _check_typed_data(graph)


def _check_typed_data(graph: GraphProto) -> None:
    typed = sum(len(t.float_data) + len(t.int64_data) for t in graph.initializer)
    if typed > MAX_TYPED_ELEMENTS:
        raise ModelFeatureNotAllowed(
            f"{typed} initializer values in typed fields; at most {MAX_TYPED_ELEMENTS} "
            "accepted: store tensors as raw_data (numpy_helper.from_array)"
        )


def _check_node(index: int, node: NodeProto) -> None:
    if node.domain not in _DEFAULT_DOMAINS or node.op_type not in ALLOWED_OPERATORS:
        where = f"{node.domain}::{node.op_type}" if node.domain else node.op_type
        raise OperatorNotAllowed(
            f"node {index} uses {where}; accepted (default domain only): "
            f"{', '.join(sorted(ALLOWED_OPERATORS))}"
        )
    if len(node.input) > MAX_NODE_INPUTS or len(node.output) != 1:
        raise ModelFeatureNotAllowed(
            f"node {index} ({node.op_type}) has {len(node.input)} inputs and "
            f"{len(node.output)} outputs; accepted: at most {MAX_NODE_INPUTS} inputs, one output"
        )
    if len(node.attribute) > MAX_ATTRIBUTES or any(
        max(len(a.ints), len(a.floats), len(a.strings)) > MAX_ATTRIBUTE_VALUES
        for a in node.attribute
    ):
        raise ModelFeatureNotAllowed(
            f"node {index} ({node.op_type}) has {len(node.attribute)} attributes or a list of "
            f"more than {MAX_ATTRIBUTE_VALUES} values; accepted: at most {MAX_ATTRIBUTES}"
        )
    for attribute in node.attribute:
        if attribute.ref_attr_name or attribute.type not in _SCALAR_ATTRIBUTES:
            raise ModelFeatureNotAllowed(
                f"node {index} ({node.op_type}) attribute {attribute.name!r} is a tensor, "
                "subgraph or reference; only numbers and strings are accepted"
            )


def _tensor_dims(info: ValueInfoProto) -> tuple[int, list[tuple[int, str]]] | None:
    """(elem_type, [(dim_value, dim_param)]) of a tensor value, or None if not a tensor."""
    if info.type.WhichOneof("value") != "tensor_type":
        return None
    tensor = info.type.tensor_type
    if not tensor.HasField("shape"):
        return tensor.elem_type, []
    if len(tensor.shape.dim) > 2:
        raise ModelIoInvalid(
            f"graph input or output {info.name!r} has rank {len(tensor.shape.dim)}; accepted: "
            "input [N, d], output [N] or [N, k]"
        )
    return tensor.elem_type, [(d.dim_value, d.dim_param) for d in tensor.shape.dim]


def _check_io(proto: ModelProto) -> tuple[str, int, str]:
    """(input name, features, output name): one float32 ``[N, d]`` in, one float tensor out."""
    graph = proto.graph
    init_names = {t.name for t in graph.initializer}
    if len(graph.input) != 1 or graph.input[0].name in init_names:
        raise ModelIoInvalid(
            f"{len(graph.input)} graph inputs (initializers must not be "
            "listed as inputs); accepted: exactly one, float32 [N, d]"
        )
    typed = _tensor_dims(graph.input[0])
    if typed is None or typed[0] != TensorProto.FLOAT or len(typed[1]) != 2:
        raise ModelIoInvalid(f"input {graph.input[0].name!r} must be a float32 tensor [N, d]")
    (rows, _), (features, _) = typed[1]
    if rows != 0 or features <= 0:
        raise ModelIoInvalid("input shape must be [N, d]: batch dimension symbolic, d fixed")
    if len(graph.output) != 1:
        raise ModelIoInvalid(f"{len(graph.output)} graph outputs; accepted: exactly one")
    out = _tensor_dims(graph.output[0])
    if out is None or out[0] != TensorProto.FLOAT or len(out[1]) not in (1, 2):
        raise ModelIoInvalid(f"output {graph.output[0].name!r} must be float32 [N] or [N, k]")
    return graph.input[0].name, features, graph.output[0].name


def _tensor_array(tensor: TensorProto) -> npt.NDArray[np.generic]:
    """A read-only view of the tensor's data (``raw_data`` is not copied a second time)."""
    dtype = _DTYPES.get(tensor.data_type)
    if dtype is None:
        raise ModelFeatureNotAllowed(
            f"initializer {tensor.name!r} has ONNX dtype "
            f"{tensor.data_type}; accepted: float32 weights, int64"
        )
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        raise ModelFeatureNotAllowed(
            f"initializer {tensor.name!r} uses external data; embed every tensor in the model bytes"
        )
    if tensor.HasField("segment") or min(tensor.dims, default=0) < 0:
        raise ModelUnparseable(f"initializer {tensor.name!r}: segments or negative dims")
    count = math.prod(tensor.dims)
    if tensor.HasField("raw_data"):
        if len(tensor.raw_data) != count * dtype.itemsize:
            raise ModelUnparseable(
                f"initializer {tensor.name!r}: {len(tensor.raw_data)} "
                f"bytes of data for {count} elements of {dtype}"
            )
        array = np.frombuffer(tensor.raw_data, dtype=dtype)
    else:
        field = tensor.float_data if tensor.data_type == _WEIGHT_TYPE else tensor.int64_data
        if len(field) != count:
            raise ModelUnparseable(
                f"initializer {tensor.name!r}: {len(field)} values for {count} elements"
            )
        array = np.array(field, dtype=dtype)
        array.flags.writeable = False
    return array.reshape(tuple(tensor.dims))


def _check_finite(name: str, array: FloatArray) -> None:
    if not np.isfinite(array).all():
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        raise NonFiniteWeights(f"initializer {name!r} holds {bad} NaN or infinite values")


def _read_initializers(proto: ModelProto) -> tuple[dict[str, FloatArray], dict[str, IntArray]]:
    """Float32 weights and int64 constants by name, in graph order; weights must be finite."""
    weights: dict[str, FloatArray] = {}
    constants: dict[str, IntArray] = {}
    int64_elements = 0
    for tensor in proto.graph.initializer:
        if tensor.name in weights or tensor.name in constants or not tensor.name:
            raise ModelUnparseable(f"initializer name {tensor.name!r} is empty or repeated")
        if tensor.data_type == TensorProto.INT64:
            int64_elements += math.prod(abs(dim) for dim in tensor.dims)
            if int64_elements > MAX_INT64_ELEMENTS:
                raise ModelFeatureNotAllowed(
                    f"int64 initializers hold more than {MAX_INT64_ELEMENTS} elements in all "
                    f"(at {tensor.name!r}); they are Reshape shapes, which need a few each"
                )
        array = _tensor_array(tensor)
        if tensor.data_type == _WEIGHT_TYPE:
            _check_finite(tensor.name, array)  # type: ignore[arg-type]
            weights[tensor.name] = array  # type: ignore[assignment]
        else:
            constants[tensor.name] = array  # type: ignore[assignment]
    return weights, constants


def _check_every_node_is_used(graph: GraphProto, output_name: str) -> None:
    """Every node feeds the output (nodes come in topological order): no dead work."""
    needed = {output_name}
    for index, node in reversed(list(enumerate(graph.node))):
        if needed.isdisjoint(node.output):
            raise ModelFeatureNotAllowed(
                f"{_describe_node(index, node)} is unused: every node "
                "must feed a later node or the graph output"
            )
        needed.update(node.input)


def parse_model(model_bytes: bytes, *, max_bytes: int = MAX_MODEL_BYTES) -> ParsedModel:
    """Decode and validate a model that stands on its own (a job's graph, an evaluation)."""
    proto = _decode(model_bytes, max_bytes)
    _check_model_features(proto)
    input_name, n_features, output_name = _check_io(proto)
    _check_every_node_is_used(proto.graph, output_name)
    weights, constants = _read_initializers(proto)
    return ParsedModel(proto, proto, input_name, n_features, output_name, weights, constants)


def _describe_node(index: int, node: NodeProto) -> str:
    return f"node {index} ({node.op_type} {list(node.input)} -> {list(node.output)})"


def _node_difference(index: int, job: NodeProto, sub: NodeProto) -> str | None:
    """What differs between two nodes, ignoring ``name`` and ``doc_string`` (no semantics)."""
    if (job.op_type, job.domain, job.overload) != (sub.op_type, sub.domain, sub.overload):
        return f"{_describe_node(index, job)} became {sub.op_type}"
    if job.input != sub.input or job.output != sub.output:
        return f"{_describe_node(index, job)} rewired to {list(sub.input)} -> {list(sub.output)}"
    job_attrs = {a.name: a for a in job.attribute}
    sub_attrs = {a.name: a for a in sub.attribute}
    for name in sorted(job_attrs.keys() | sub_attrs.keys()):
        if job_attrs.get(name) != sub_attrs.get(name):
            return f"{_describe_node(index, job)} attribute {name!r} differs (or is added/removed)"
    return None


def _nodes_difference(job: GraphProto, sub: GraphProto) -> str | None:
    if job.node == sub.node:  # one C-level comparison in the common case
        return None
    for index, (job_node, sub_node) in enumerate(zip(job.node, sub.node, strict=False)):
        difference = _node_difference(index, job_node, sub_node)
        if difference is not None:
            return difference
    if len(sub.node) > len(job.node):
        return f"extra {_describe_node(len(job.node), sub.node[len(job.node)])}"
    if len(sub.node) < len(job.node):
        return f"missing {_describe_node(len(sub.node), job.node[len(sub.node)])}"
    return None


def _graph_difference(job: ModelProto, sub: ModelProto) -> str | None:
    """The first structural difference, in the order a reader would look for it."""
    if job.ir_version != sub.ir_version or job.opset_import != sub.opset_import:
        return "IR version or opset imports differ"
    if sub.functions or sub.training_info or sub.graph.sparse_initializer:
        return "functions, training info or sparse initializers added"
    for what in ("input", "output", "value_info"):
        if getattr(job.graph, what) != getattr(sub.graph, what):
            return f"graph {what} declarations differ (names, dtypes or shapes)"
    return _nodes_difference(job.graph, sub.graph)


def _array_like(tensor: TensorProto, want: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """:func:`_tensor_array` for a tensor whose dtype and dims already match ``want``."""
    if tensor.HasField("raw_data") and not (
        tensor.external_data or tensor.data_location or tensor.HasField("segment")
    ):
        raw = tensor.raw_data
        if len(raw) != want.nbytes:
            raise ModelUnparseable(
                f"initializer {tensor.name!r}: {len(raw)} bytes of data "
                f"for {want.size} elements of {want.dtype}"
            )
        return np.frombuffer(raw, dtype=want.dtype).reshape(want.shape)
    return _tensor_array(tensor)


def _read_like(job: ParsedModel, proto: ModelProto) -> dict[str, FloatArray]:
    """The submission's weights, each with the job's name, dtype and shape (any order).

    Integer initializers are graph structure and must equal the job's values.
    """
    expected: dict[str, npt.NDArray[np.generic]] = {**job.weights, **job.constants}
    if len(proto.graph.initializer) > len(expected):
        raise InitializerMismatch(
            f"{len(proto.graph.initializer)} initializers; the job's graph has {len(expected)}"
        )
    _check_typed_data(proto.graph)
    seen: dict[str, npt.NDArray[np.generic]] = {}
    for tensor in proto.graph.initializer:
        want = expected.get(tensor.name)
        if want is None or tensor.name in seen:
            raise InitializerMismatch(
                f"initializer {tensor.name!r} is unexpected or repeated; "
                f"the job's graph has {list(expected)}"
            )
        dtype = _DTYPES.get(tensor.data_type)
        if dtype != want.dtype or tuple(tensor.dims) != want.shape:
            raise InitializerMismatch(
                f"initializer {tensor.name!r} is ONNX dtype {tensor.data_type} shape "
                f"{list(tensor.dims)}; the job's is {want.dtype} {list(want.shape)}"
            )
        seen[tensor.name] = _array_like(tensor, want)
    if len(seen) != len(expected):
        raise InitializerMismatch(f"initializers missing: {sorted(expected.keys() - seen)}")
    for name, constant in job.constants.items():
        if not np.array_equal(seen[name], constant):
            raise InitializerMismatch(
                f"integer initializer {name!r} is part of the graph's "
                "structure and must keep the job's values"
            )
    weights: dict[str, FloatArray] = {name: seen[name] for name in job.weights}  # type: ignore[misc]
    for name, array in weights.items():
        _check_finite(name, array)
    return weights


def check_same_graph(
    job: ParsedModel, submitted: bytes | ModelProto, *, max_bytes: int = MAX_MODEL_BYTES
) -> ParsedModel:
    """Accept ``submitted`` only if it is ``job``'s graph with other (finite) weight values.

    Returns the submission parsed, sharing the job's validated structure: a submission
    passes every rule of :func:`parse_model` by construction, so none is re-run here.
    """
    proto = submitted if isinstance(submitted, ModelProto) else _decode(submitted, max_bytes)
    difference = _graph_difference(job.graph, proto)
    if difference is not None:
        raise GraphMismatch(f"{difference}; only initializer values may differ from the job's")
    weights = _read_like(job, proto)
    return ParsedModel(
        proto, job.graph, job.input_name, job.n_features, job.output_name, weights, job.constants
    )


def check_weights_match(job: ParsedModel, model: ParsedModel) -> None:
    """Cheap guard for callers handed a ``ParsedModel``: same weight names, shapes, dtypes.

    Free when ``model`` came from ``check_same_graph(job, ...)`` (it shares ``job.graph``).
    """
    if model.graph is job.graph:
        return
    if job.input_name != model.input_name or job.output_name != model.output_name:
        raise GraphMismatch("model input/output names differ from the job's graph")
    if list(job.weights) != list(model.weights):
        raise InitializerMismatch(
            f"weights {list(model.weights)}; the job's graph has {list(job.weights)}"
        )
    for name, want in job.weights.items():
        got = model.weights[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise InitializerMismatch(
                f"weight {name!r} is {got.dtype}{list(got.shape)}; the "
                f"job's is {want.dtype}{list(want.shape)}"
            )
