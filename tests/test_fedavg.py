"""FedAvg: an exact, order-defined, byte-reproducible elementwise mean."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dapp.fedavg import fedavg, serialize_with_weights
from dapp.onnx_checks import ParsedModel, check_same_graph, parse_model
from deml_console import model_zoo
from deml_protocol.errors import Rejected

SIZES = [6, 5, 3]


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(Rejected) as caught:
        call()
    assert caught.value.detail
    return caught.value.code


@pytest.fixture(scope="module")
def base() -> bytes:
    return model_zoo.mlp(SIZES, seed=0)


def client_model(base: bytes, seed: int) -> bytes:
    """The base graph with weights a client might send (wide range, to stress rounding)."""
    rng = np.random.default_rng(seed)
    weights = {
        name: (rng.standard_normal(array.shape) * 10.0 ** rng.integers(-3, 4))
        for name, array in model_zoo.get_weights(base).items()
    }
    return model_zoo.with_weights(base, weights)


def expected_mean(
    models: Sequence[bytes], weights: Sequence[int]
) -> dict[str, npt.NDArray[np.float32]]:
    """The documented rule, written out: float64 sum in order, one division, one cast."""
    result = {}
    for name in model_zoo.get_weights(models[0]):
        total = np.zeros_like(model_zoo.get_weights(models[0])[name], dtype=np.float64)
        for model, weight in zip(models, weights, strict=True):
            total = total + model_zoo.get_weights(model)[name].astype(np.float64) * weight
        result[name] = (total / sum(weights)).astype(np.float32)
    return result


def test_equal_weights_average_exactly(base: bytes) -> None:
    models = [client_model(base, seed) for seed in (1, 2, 3)]
    averaged = model_zoo.get_weights(fedavg(base, models))
    for name, array in expected_mean(models, [1, 1, 1]).items():
        np.testing.assert_array_equal(averaged[name], array)
        assert averaged[name].dtype == np.float32
    two = model_zoo.get_weights(fedavg(base, models[:2]))
    first, second = model_zoo.get_weights(models[0]), model_zoo.get_weights(models[1])
    np.testing.assert_allclose(two["W0"], (first["W0"] + second["W0"]) / 2, rtol=1e-6)


def test_integer_weights(base: bytes) -> None:
    models = [client_model(base, seed) for seed in (4, 5, 6)]
    weights = [3, 0, 7]
    averaged = model_zoo.get_weights(fedavg(base, models, weights))
    for name, array in expected_mean(models, weights).items():
        np.testing.assert_array_equal(averaged[name], array)
    only_first = fedavg(base, models, [5, 0, 0])
    assert only_first == models[0]


def test_result_is_the_base_graph_and_byte_identical(base: bytes) -> None:
    models = [client_model(base, seed) for seed in (7, 8)]
    result = fedavg(base, models)
    assert result == fedavg(base, list(models))
    assert result == model_zoo.with_weights(base, expected_mean(models, [1, 1]))
    job = parse_model(base)
    check_same_graph(job, result)
    assert fedavg(job, [check_same_graph(job, m) for m in models]) == result


def test_order_is_the_given_order(base: bytes) -> None:
    models = [client_model(base, seed) for seed in (9, 10, 11, 12)]
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        ordered = [models[i] for i in order]
        averaged = model_zoo.get_weights(fedavg(base, ordered))
        for name, array in expected_mean(ordered, [1] * 4).items():
            np.testing.assert_array_equal(averaged[name], array)


def test_single_submission_and_no_submission(base: bytes) -> None:
    model = client_model(base, 13)
    assert fedavg(base, [model]) == model
    assert fedavg(base, []) == base  # the zoo already serializes canonically


def test_submissions_must_have_the_base_graph(base: bytes) -> None:
    other = model_zoo.mlp([6, 4, 3], seed=0)
    assert code_of(lambda: fedavg(base, [client_model(base, 1), other])) == ("initializer_mismatch")
    weights = model_zoo.get_weights(base)
    weights["B1"][1] = np.nan
    poisoned = model_zoo.with_weights(base, weights)
    assert code_of(lambda: fedavg(base, [poisoned])) == "non_finite_weights"
    assert code_of(lambda: fedavg(base, [parse_model(other)])) == "initializer_mismatch"


@pytest.mark.parametrize("weights", [[1], [1, -1], [0, 0], [1, True], [1, 2**53], [1.0, 1]])
def test_weights_are_validated(base: bytes, weights: list[int]) -> None:
    models = [client_model(base, 1), client_model(base, 2)]
    assert code_of(lambda: fedavg(base, models, weights)) == "aggregation_weights_invalid"


def test_integer_constants_come_from_the_base() -> None:
    nodes = [
        helper.make_node("Reshape", ["X", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "W0", "B0"], ["prediction"]),
    ]
    graph = helper.make_graph(
        nodes,
        "reshape",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["N", 1])],
        initializer=[
            numpy_helper.from_array(np.array([0, 4], dtype=np.int64), "shape"),
            numpy_helper.from_array(np.ones((4, 1), dtype=np.float32), "W0"),
            numpy_helper.from_array(np.zeros(1, dtype=np.float32), "B0"),
        ],
    )
    base = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    ).SerializeToString()
    client = model_zoo.with_weights(base, {"W0": np.full((4, 1), 3.0)})
    averaged = onnx.load_from_string(fedavg(base, [base, client]))
    values = {t.name: numpy_helper.to_array(t) for t in averaged.graph.initializer}
    np.testing.assert_array_equal(values["shape"], [0, 4])
    np.testing.assert_array_equal(values["W0"], np.full((4, 1), 2.0))


def list_based_fedavg(base: bytes, submissions: Sequence[bytes], weights: Sequence[int]) -> bytes:
    """The previous implementation: every submission parsed into a list, then averaged."""
    job = parse_model(base)
    models = [check_same_graph(job, submission) for submission in submissions]
    total = float(sum(weights))
    averaged = {}
    for name, template in job.weights.items():
        accumulator = np.zeros(template.shape, dtype=np.float64)
        for model, weight in zip(models, weights, strict=True):
            if weight:
                accumulator += np.multiply(model.weights[name], float(weight), dtype=np.float64)
        accumulator /= total
        averaged[name] = accumulator.astype(np.float32)
    return serialize_with_weights(job, averaged)


@pytest.mark.parametrize(
    "seeds, weights",
    [
        ((1,), [1]),
        ((1, 2, 3), [1, 1, 1]),
        ((4, 5, 6, 7), [3, 0, 7, 2**52]),
        ((8, 9, 10, 11, 12), [1, 2, 3, 4, 5]),
    ],
)
def test_streaming_equals_the_list_based_result(
    base: bytes, seeds: tuple[int, ...], weights: list[int]
) -> None:
    models = [client_model(base, seed) for seed in seeds]
    expected = list_based_fedavg(base, models, weights)
    assert fedavg(base, models, weights) == expected
    assert fedavg(base, iter(models), iter(weights)) == expected
    if weights == [1] * len(models):
        assert fedavg(base, iter(models)) == expected


def test_generators_are_consumed_one_at_a_time(base: bytes) -> None:
    models = [client_model(base, seed) for seed in (20, 21, 22)]
    job = parse_model(base)
    drawn: list[int] = []

    def one_by_one() -> Iterator[bytes | ParsedModel]:
        for index, model in enumerate(models):
            drawn.append(index)
            yield check_same_graph(job, model) if index == 1 else model

    assert fedavg(job, one_by_one(), (w for w in (2, 1, 1))) == fedavg(base, models, [2, 1, 1])
    assert drawn == [0, 1, 2]
    drawn.clear()
    poisoned = (client_model(base, 23) if i < 1 else b"not a model" for i in range(5))
    assert code_of(lambda: fedavg(base, poisoned)) == "model_unparseable"
    assert next(poisoned) == b"not a model"  # stopped at the bad one, the rest not drawn


@pytest.mark.parametrize("count, weights", [(2, [1]), (1, [1, 1]), (3, [0, 0, 0])])
def test_weight_count_is_checked_for_generators(
    base: bytes, count: int, weights: list[int]
) -> None:
    models = (client_model(base, seed) for seed in range(count))
    assert code_of(lambda: fedavg(base, models, iter(weights))) == ("aggregation_weights_invalid")
