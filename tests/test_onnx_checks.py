"""Model validation: what a job's graph may contain, and what a submission may change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dapp import onnx_checks
from dapp.evaluation import Scorer
from dapp.onnx_checks import ParsedModel, check_same_graph, parse_model
from deml_console import model_zoo
from deml_protocol.errors import GraphMismatch, Rejected

Edit = Callable[[onnx.ModelProto], None]


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(Rejected) as caught:
        call()
    assert caught.value.detail  # every rejection says what was wrong
    return caught.value.code


def edited(model_bytes: bytes, edit: Edit) -> bytes:
    model = onnx.load_from_string(model_bytes)
    edit(model)
    serialized: bytes = model.SerializeToString()
    return serialized


def reshape_model(shape: list[int]) -> bytes:
    """X -> Reshape(X, shape) -> Gemm: a graph with an int64 (structural) initializer."""
    nodes = [
        helper.make_node("Reshape", ["X", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W0", "B0"], ["prediction"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(shape, dtype=np.int64), "shape"),
        numpy_helper.from_array(np.ones((4, 1), dtype=np.float32), "W0"),
        numpy_helper.from_array(np.zeros(1, dtype=np.float32), "B0"),
    ]
    graph = helper.make_graph(
        nodes,
        "reshape",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["N", 1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    serialized: bytes = model.SerializeToString()
    return serialized


def single_op_model(op_type: str, domain: str = "", **attributes: Any) -> bytes:
    node = helper.make_node(op_type, ["X"], ["Y"], domain=domain, **attributes)
    graph = helper.make_graph(
        [node],
        "one-op",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 3])],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    serialized: bytes = helper.make_model(
        graph, opset_imports=opsets, ir_version=8
    ).SerializeToString()
    return serialized


@pytest.fixture(scope="module")
def job_bytes() -> bytes:
    return model_zoo.mlp([5, 8, 3], seed=1)


@pytest.fixture(scope="module")
def job(job_bytes: bytes) -> ParsedModel:
    return parse_model(job_bytes)


# ---- the model zoo builds what the DApp accepts ------------------------------------------


@pytest.mark.parametrize(
    "build, params",
    [
        (lambda: model_zoo.linear_regression(np.ones(4), 0.5), 5),
        (lambda: model_zoo.logistic_regression(np.ones(30), 0.0), 31),
        (lambda: model_zoo.softmax_regression(np.ones((6, 3))), 21),
        (lambda: model_zoo.mlp([30, 64, 64, 2], seed=0), 30 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2),
        (lambda: model_zoo.mlp([3, 4, 1], head="linear"), 3 * 4 + 4 + 4 + 1),
    ],
)
def test_zoo_models_pass_and_count_parameters(build: Callable[[], bytes], params: int) -> None:
    parsed = parse_model(build())
    assert parsed.params == params
    assert parsed.input_name == model_zoo.INPUT_NAME
    assert all(not a.flags.writeable for a in parsed.weights.values())


def test_get_and_with_weights_round_trip(job_bytes: bytes) -> None:
    weights = model_zoo.get_weights(job_bytes)
    assert list(weights) == ["W0", "B0", "W1", "B1"]
    assert model_zoo.with_weights(job_bytes, weights) == job_bytes
    weights["W0"] += 1.0
    changed = model_zoo.with_weights(job_bytes, weights)
    assert changed == model_zoo.with_weights(job_bytes, weights)  # deterministic bytes
    np.testing.assert_array_equal(model_zoo.get_weights(changed)["W0"], weights["W0"])
    with pytest.raises(ValueError):
        model_zoo.with_weights(job_bytes, {"W0": np.ones((2, 2))})
    with pytest.raises(KeyError):
        model_zoo.with_weights(job_bytes, {"nope": np.ones(1)})


def test_zoo_mlp_is_seeded() -> None:
    assert model_zoo.mlp([4, 3, 2], seed=7) == model_zoo.mlp([4, 3, 2], seed=7)
    assert model_zoo.mlp([4, 3, 2], seed=7) != model_zoo.mlp([4, 3, 2], seed=8)


# ---- parse_model: a model on its own -----------------------------------------------------


@pytest.mark.parametrize("garbage", [b"", b"not an onnx model", b"\xff" * 64, b"\x08\x07"])
def test_garbage_is_unparseable(garbage: bytes) -> None:
    assert code_of(lambda: parse_model(garbage)) == "model_unparseable"


def test_size_bound(job_bytes: bytes) -> None:
    assert code_of(lambda: parse_model(job_bytes, max_bytes=len(job_bytes) - 1)) == (
        "model_too_large"
    )
    parse_model(job_bytes, max_bytes=len(job_bytes))


@pytest.mark.parametrize(
    "op_type, domain",
    [
        ("Exp", ""),
        ("Erf", ""),
        ("Cos", ""),
        ("Relu", "com.example"),
    ],
)
def test_operator_allow_list(op_type: str, domain: str) -> None:
    assert code_of(lambda: parse_model(single_op_model(op_type, domain))) == (
        "operator_not_allowed"
    )


def test_allowed_single_op_passes() -> None:
    parse_model(single_op_model("Softmax", axis=1))


def relu_chain(count: int) -> bytes:
    nodes = [helper.make_node("Relu", [f"h{i}" if i else "X"], [f"h{i + 1}"]) for i in range(count)]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info(f"h{count}", TensorProto.FLOAT, ["N", 3])],
    )
    serialized: bytes = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    ).SerializeToString()
    return serialized


def test_node_count_is_capped(job: ParsedModel) -> None:
    parse_model(relu_chain(onnx_checks.MAX_NODES))
    longer = relu_chain(onnx_checks.MAX_NODES + 1)
    assert code_of(lambda: parse_model(longer)) == "too_many_nodes"
    assert code_of(lambda: check_same_graph(job, longer)) == "graph_mismatch"


def test_every_node_feeds_the_output(job_bytes: bytes) -> None:
    def add_dead_node(model: onnx.ModelProto) -> None:
        model.graph.node.insert(1, helper.make_node("Relu", ["X"], ["unused"]))

    assert code_of(lambda: parse_model(edited(job_bytes, add_dead_node))) == (
        "model_feature_not_allowed"
    )
    with_dead_tail = edited(
        relu_chain(3),
        lambda m: m.graph.output[0].CopyFrom(
            helper.make_tensor_value_info("h2", TensorProto.FLOAT, ["N", 3])
        ),
    )
    assert code_of(lambda: parse_model(with_dead_tail)) == "model_feature_not_allowed"


def _add_function(model: onnx.ModelProto) -> None:
    model.functions.append(onnx.FunctionProto(name="f", domain="local"))


def _external_weight(model: onnx.ModelProto) -> None:
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="/etc/passwd")


def _subgraph_attribute(model: onnx.ModelProto) -> None:
    inner = helper.make_graph([], "inner", [], [])
    model.graph.node[1].attribute.append(helper.make_attribute("body", inner))


def _float64_weight(model: onnx.ModelProto) -> None:
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.zeros(8), "B0"))


@pytest.mark.parametrize(
    "edit",
    [
        _add_function,
        _external_weight,
        _subgraph_attribute,
        _float64_weight,
        lambda m: setattr(m, "ir_version", 3),
        lambda m: m.opset_import[0].__setattr__("version", 9),
        lambda m: m.opset_import.append(helper.make_opsetid("com.example", 1)),
        lambda m: m.graph.sparse_initializer.add(),
    ],
)
def test_features_outside_the_subset(job_bytes: bytes, edit: Edit) -> None:
    assert code_of(lambda: parse_model(edited(job_bytes, edit))) == "model_feature_not_allowed"


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.graph.input.append(
            helper.make_tensor_value_info("Z", TensorProto.FLOAT, ["N", 5])
        ),
        lambda m: m.graph.input[0].type.tensor_type.__setattr__("elem_type", TensorProto.INT64),
        lambda m: m.graph.input[0].type.tensor_type.shape.dim[0].__setattr__("dim_value", 10),
        lambda m: m.graph.input[0].type.tensor_type.shape.dim.add(),
        lambda m: m.graph.output.append(m.graph.output[0]),
        lambda m: m.graph.input.append(
            helper.make_tensor_value_info("W0", TensorProto.FLOAT, [5, 8])
        ),
    ],
)
def test_input_and_output_shape_rules(job_bytes: bytes, edit: Edit) -> None:
    assert code_of(lambda: parse_model(edited(job_bytes, edit))) == "model_io_invalid"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_job_weights(job_bytes: bytes, bad: float) -> None:
    weights = model_zoo.get_weights(job_bytes)
    weights["W1"][2, 1] = bad
    model = model_zoo.with_weights(job_bytes, weights)
    assert code_of(lambda: parse_model(model)) == "non_finite_weights"


def test_truncated_raw_data(job_bytes: bytes) -> None:
    def truncate(model: onnx.ModelProto) -> None:
        model.graph.initializer[0].raw_data = model.graph.initializer[0].raw_data[:-4]

    assert code_of(lambda: parse_model(edited(job_bytes, truncate))) == "model_unparseable"


def test_typed_float_data_reads_like_raw_data(job_bytes: bytes) -> None:
    def to_float_data(model: onnx.ModelProto) -> None:
        for tensor in model.graph.initializer:
            values = numpy_helper.to_array(tensor).ravel().tolist()
            tensor.ClearField("raw_data")
            tensor.float_data.extend(values)

    typed = parse_model(edited(job_bytes, to_float_data))
    for name, array in parse_model(job_bytes).weights.items():
        np.testing.assert_array_equal(typed.weights[name], array)


# ---- check_same_graph: a submission against the job's graph ------------------------------


def test_new_weights_are_accepted(job: ParsedModel, job_bytes: bytes) -> None:
    weights = {k: v * 2 - 1 for k, v in model_zoo.get_weights(job_bytes).items()}
    submission = check_same_graph(job, model_zoo.with_weights(job_bytes, weights))
    assert submission.graph is job.graph
    assert list(submission.weights) == list(job.weights)
    for name, array in weights.items():
        np.testing.assert_array_equal(submission.weights[name], array)


def test_cosmetic_differences_are_accepted(job: ParsedModel, job_bytes: bytes) -> None:
    def cosmetic(model: onnx.ModelProto) -> None:
        model.producer_name = "someone-else"
        model.graph.node[0].name = "renamed"
        model.graph.node[0].doc_string = "a comment"
        first, *rest = list(model.graph.initializer)
        del model.graph.initializer[:]
        model.graph.initializer.extend([*rest, first])  # order of initializers is free

    assert list(check_same_graph(job, edited(job_bytes, cosmetic)).weights) == list(job.weights)


def _extra_node(model: onnx.ModelProto) -> None:
    model.graph.node.append(helper.make_node("Identity", ["probabilities"], ["copy"]))


def _changed_attribute(model: onnx.ModelProto) -> None:
    model.graph.node[-1].attribute[0].i = 0  # Softmax axis 1 -> 0


def _added_attribute(model: onnx.ModelProto) -> None:
    model.graph.node[0].attribute.append(helper.make_attribute("transB", 1))


def _changed_op(model: onnx.ModelProto) -> None:
    model.graph.node[1].op_type = "Sigmoid"


def _disallowed_op(model: onnx.ModelProto) -> None:
    model.graph.node[1].op_type = "Exp"


def _rewired(model: onnx.ModelProto) -> None:
    model.graph.node[2].input[0] = "dense0"  # skip the Relu


def _removed_node(model: onnx.ModelProto) -> None:
    del model.graph.node[1]


def _opset(model: onnx.ModelProto) -> None:
    model.opset_import[0].version = 18


@pytest.mark.parametrize(
    "edit, detail",
    [
        (_extra_node, "extra node"),
        (_changed_attribute, "attribute 'axis'"),
        (_added_attribute, "attribute 'transB'"),
        (_changed_op, "became Sigmoid"),
        (_disallowed_op, "became Exp"),
        (_rewired, "rewired"),
        (_removed_node, ""),
        (_opset, "opset"),
        (
            lambda m: m.graph.input[0].type.tensor_type.shape.dim[1].__setattr__("dim_value", 6),
            "input",
        ),
        (lambda m: m.graph.output[0].__setattr__("name", "other"), "output"),
    ],
)
def test_graph_changes_are_rejected(
    job: ParsedModel, job_bytes: bytes, edit: Edit, detail: str
) -> None:
    with pytest.raises(GraphMismatch, match=detail):
        check_same_graph(job, edited(job_bytes, edit))


def test_a_different_graph_is_rejected(job: ParsedModel) -> None:
    other = model_zoo.mlp([5, 9, 3], seed=1)
    assert code_of(lambda: check_same_graph(job, other)) == "initializer_mismatch"
    regression = model_zoo.linear_regression(np.ones(5))
    assert code_of(lambda: check_same_graph(job, regression)) == "graph_mismatch"


def _renamed_initializer(model: onnx.ModelProto) -> None:
    model.graph.initializer[0].name = "W0_renamed"


def _wrong_shape(model: onnx.ModelProto) -> None:
    model.graph.initializer[1].CopyFrom(
        numpy_helper.from_array(np.zeros(9, dtype=np.float32), "B0")
    )


def _duplicate_initializer(model: onnx.ModelProto) -> None:
    model.graph.initializer.append(model.graph.initializer[0])


def _dropped_initializer(model: onnx.ModelProto) -> None:
    del model.graph.initializer[3]


@pytest.mark.parametrize(
    "edit",
    [
        _renamed_initializer,
        _wrong_shape,
        _float64_weight,
        _duplicate_initializer,
        _dropped_initializer,
    ],
)
def test_initializer_changes_are_rejected(job: ParsedModel, job_bytes: bytes, edit: Edit) -> None:
    assert code_of(lambda: check_same_graph(job, edited(job_bytes, edit))) == (
        "initializer_mismatch"
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_submission(job: ParsedModel, job_bytes: bytes, bad: float) -> None:
    weights = model_zoo.get_weights(job_bytes)
    weights["B1"][0] = bad
    submission = model_zoo.with_weights(job_bytes, weights)
    assert code_of(lambda: check_same_graph(job, submission)) == "non_finite_weights"


@pytest.mark.parametrize("garbage", [b"", b"garbage bytes", b"\xff" * 32])
def test_garbage_submission(job: ParsedModel, garbage: bytes) -> None:
    assert code_of(lambda: check_same_graph(job, garbage)) == "model_unparseable"


def test_integer_initializers_are_structure() -> None:
    job = parse_model(reshape_model([0, 4]))
    assert set(job.constants) == {"shape"} and set(job.weights) == {"W0", "B0"}
    check_same_graph(job, reshape_model([0, 4]))
    assert code_of(lambda: check_same_graph(job, reshape_model([0, 2]))) == ("initializer_mismatch")


def int64_arithmetic_model(elements: int, adds: int = 63) -> bytes:
    """The reproduced shape-inference attack: an int64 constant of ``elements`` values fed
    through ``adds`` Add nodes into a Reshape's shape. With data propagation ONNX computed
    every Add's values (one protobuf dimension each) before the work budget was known."""
    nodes = [helper.make_node("Add", ["c", "c"], ["h1"])]
    nodes += [helper.make_node("Add", [f"h{i}", "c"], [f"h{i + 1}"]) for i in range(1, adds)]
    nodes.append(helper.make_node("Reshape", ["X", f"h{adds}"], ["out"]))
    graph = helper.make_graph(
        nodes,
        "int64-arithmetic",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.ones(elements, dtype=np.int64), "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    serialized: bytes = model.SerializeToString()
    return serialized


def test_int64_constants_are_capped_before_shape_inference() -> None:
    """1,000,000 int64 values took 29 s and 4.6 GiB in shape inference; now refused while
    parsing. At the cap the same structure is cheap to infer and still a named rejection."""
    cap = onnx_checks.MAX_INT64_ELEMENTS
    over, attack = int64_arithmetic_model(cap + 1), int64_arithmetic_model(1_000_000)
    assert code_of(lambda: parse_model(over)) == "model_feature_not_allowed"
    assert code_of(lambda: parse_model(attack)) == "model_feature_not_allowed"
    at_cap = parse_model(int64_arithmetic_model(cap))
    assert code_of(lambda: Scorer.compile(at_cap, max_rows=10)) == "model_invalid"
    assert code_of(lambda: parse_model(reshape_model([0] * (cap // 2 + 1) * 2))) == (
        "model_feature_not_allowed"
    )


def test_int64_cap_counts_all_constants_together() -> None:
    def split(model: onnx.ModelProto) -> None:
        extra = numpy_helper.from_array(np.zeros(onnx_checks.MAX_INT64_ELEMENTS, np.int64), "z")
        model.graph.initializer.append(extra)

    model = onnx.load_from_string(reshape_model([0, 4]))
    split(model)
    assert code_of(lambda: parse_model(model.SerializeToString())) == ("model_feature_not_allowed")


def _many_inputs(model: onnx.ModelProto) -> None:
    model.graph.node[0].input.extend(["X"] * onnx_checks.MAX_NODE_INPUTS)


def _two_outputs(model: onnx.ModelProto) -> None:
    model.graph.node[0].output.append("extra")


def _long_attribute(model: onnx.ModelProto) -> None:
    values = list(range(onnx_checks.MAX_ATTRIBUTE_VALUES + 1))
    model.graph.node[0].attribute.append(helper.make_attribute("junk", values))


def _many_attributes(model: onnx.ModelProto) -> None:
    model.graph.node[0].attribute.extend(
        helper.make_attribute(f"a{i}", 1) for i in range(onnx_checks.MAX_ATTRIBUTES + 1)
    )


def _many_value_infos(model: onnx.ModelProto) -> None:
    model.graph.value_info.extend(
        helper.make_tensor_value_info(f"v{i}", TensorProto.FLOAT, ["N", 1])
        for i in range(onnx_checks.MAX_VALUE_INFOS + 1)
    )


def _high_rank_value_info(model: onnx.ModelProto) -> None:
    rank = onnx_checks.MAX_DECLARED_RANK + 1
    model.graph.value_info.append(helper.make_tensor_value_info("v", TensorProto.FLOAT, [1] * rank))


def _many_initializers(model: onnx.ModelProto) -> None:
    model.graph.initializer.extend(
        numpy_helper.from_array(np.zeros(1, np.float32), f"unused{i}")
        for i in range(onnx_checks.MAX_INITIALIZERS)
    )


def _typed_data(model: onnx.ModelProto) -> None:
    size = onnx_checks.MAX_TYPED_ELEMENTS + 1
    model.graph.initializer.append(helper.make_tensor("t", TensorProto.FLOAT, [size], [0.0] * size))


@pytest.mark.parametrize(
    "edit",
    [
        _many_inputs,
        _two_outputs,
        _long_attribute,
        _many_attributes,
        _many_value_infos,
        _high_rank_value_info,
        _many_initializers,
        _typed_data,
    ],
)
def test_what_shape_inference_walks_is_bounded(job_bytes: bytes, edit: Edit) -> None:
    """Each bound holds at its limit + 1, checked while parsing (before shape inference)."""
    assert code_of(lambda: parse_model(edited(job_bytes, edit))) == "model_feature_not_allowed"


def test_typed_data_is_bounded_in_submissions() -> None:
    big = model_zoo.mlp([300, 256, 2], seed=0)  # 77,570 weights: over the typed-data cap
    parsed = parse_model(big)

    def to_float_data(model: onnx.ModelProto) -> None:
        for tensor in model.graph.initializer:
            values = numpy_helper.to_array(tensor).ravel().tolist()
            tensor.ClearField("raw_data")
            tensor.float_data.extend(values)

    assert code_of(lambda: check_same_graph(parsed, edited(big, to_float_data))) == (
        "model_feature_not_allowed"
    )


def test_a_reshape_shape_must_be_a_constant_not_computed() -> None:
    """Shape inference runs without data propagation, whose cost nothing bounds: the result
    of a Reshape whose shape is computed from int64 constants (here [0, 2] + [0, 2] = [0, 4],
    a valid shape) is not inferred, so the tensor is refused; with the shape as an
    initializer the same graph is accepted."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["half", "half"], ["shape"]),
            helper.make_node("Reshape", ["X", "shape"], ["r"]),
            helper.make_node("Identity", ["r"], ["out"]),
        ],
        "computed-shape",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(np.array([0, 2], dtype=np.int64), "half")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    computed = parse_model(model.SerializeToString())
    assert code_of(lambda: Scorer.compile(computed, max_rows=10)) == "model_invalid"
    Scorer.compile(parse_model(reshape_model([0, 4])), max_rows=10)
