"""Metrics against scikit-learn, shard validation, and scoring models with ONNX Runtime."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
import sklearn.metrics as skm
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from dapp import evaluation, metrics, onnx_checks, shards, work_budget
from dapp.evaluation import Evaluation, Scorer, evaluate
from dapp.metrics import PPM, SCORE_MIN, Metric
from dapp.onnx_checks import check_same_graph, parse_model
from dapp.shards import Shard, load_shard
from deml_console import model_zoo
from deml_protocol.errors import Rejected

RNG_SEED = 20240601
Dataset = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def code_of(call: Callable[[], object]) -> str:
    with pytest.raises(Rejected) as caught:
        call()
    assert caught.value.detail
    return caught.value.code


def npz(**arrays: npt.NDArray[Any]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def random_probabilities(
    rng: np.random.Generator, rows: int, classes: int
) -> npt.NDArray[np.float64]:
    raw = rng.random((rows, classes)) + 0.01
    normalised: npt.NDArray[np.float64] = raw / raw.sum(axis=1, keepdims=True)
    return normalised


# ---- metrics against scikit-learn (before rounding), then the integer rule ---------------


@pytest.mark.parametrize("classes", [2, 3, 5])
def test_accuracy_and_log_loss_match_sklearn(classes: int) -> None:
    rng = np.random.default_rng(RNG_SEED + classes)
    probabilities = random_probabilities(rng, 1000, classes)
    labels = rng.integers(0, classes, 1000)
    result = metrics.accuracy(probabilities, labels)
    expected = skm.accuracy_score(labels, probabilities.argmax(axis=1))
    assert result.value == pytest.approx(expected, abs=1e-12)
    hits = int(round(expected * 1000))
    assert result.score == hits * PPM // 1000
    loss = metrics.log_loss(probabilities, labels)
    expected_loss = skm.log_loss(labels, probabilities, labels=list(range(classes)))
    assert loss.value == pytest.approx(expected_loss, rel=1e-9)
    assert loss.score == int(np.floor(-loss.value * PPM))


def test_one_column_binary_is_p_of_class_one() -> None:
    rng = np.random.default_rng(RNG_SEED)
    positive = rng.random(500)
    positive[:10] = 0.5  # a tie predicts class 0, as argmax over [1 - p, p] would
    labels = rng.integers(0, 2, 500)
    two_columns = np.stack([1 - positive, positive], axis=1)
    one_column = positive[:, None]
    assert metrics.accuracy(one_column, labels) == metrics.accuracy(two_columns, labels)
    assert metrics.log_loss(one_column, labels).value == pytest.approx(
        skm.log_loss(labels, positive), rel=1e-9
    )
    assert metrics.roc_auc(one_column, labels) == metrics.roc_auc(two_columns, labels)


@pytest.mark.parametrize("decimals", [None, 2, 1])
def test_roc_auc_matches_sklearn_with_and_without_ties(decimals: int | None) -> None:
    rng = np.random.default_rng(RNG_SEED)
    labels = rng.integers(0, 2, 2000)
    scores = np.clip(labels * 0.3 + rng.random(2000) * 0.7, 0, 1)
    if decimals is not None:
        scores = np.round(scores, decimals)  # heavy ties
    result = metrics.roc_auc(scores[:, None], labels)
    expected = skm.roc_auc_score(labels, scores)
    assert result.value == pytest.approx(expected, abs=1e-12)
    twice_u, positives, negatives = metrics.twice_mann_whitney(scores, labels)
    assert result.score == twice_u * PPM // (2 * positives * negatives)
    assert result.score == int(np.floor(expected * PPM + 1e-6))
    as_float32 = scores.astype(np.float32)[:, None]
    assert metrics.roc_auc(as_float32, labels) == metrics.roc_auc(
        as_float32.astype(np.float64), labels
    )


def test_roc_auc_extremes() -> None:
    labels = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError):
        metrics.twice_mann_whitney(np.array([-0.5, 0.1, 0.2, 0.3]), labels)
    signed_zero = metrics.twice_mann_whitney(np.array([-0.0, 0.0, 0.0, -0.0]), labels)
    assert signed_zero == (4, 2, 2)  # -0.0 ties with 0.0
    assert metrics.roc_auc(np.array([[0.1], [0.2], [0.8], [0.9]]), labels).score == PPM
    assert metrics.roc_auc(np.array([[0.9], [0.8], [0.2], [0.1]]), labels).score == 0
    assert metrics.roc_auc(np.full((4, 1), 0.5), labels).score == PPM // 2


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(RNG_SEED)
    targets = rng.normal(3.0, 2.0, 1000)
    predictions = targets + rng.normal(0.0, 0.5, 1000)
    rmse, mae, r2 = (
        metrics.rmse(predictions, targets),
        metrics.mae(predictions, targets),
        metrics.r2(predictions, targets),
    )
    assert rmse.value == pytest.approx(
        np.sqrt(skm.mean_squared_error(targets, predictions)), rel=1e-12
    )
    assert mae.value == pytest.approx(skm.mean_absolute_error(targets, predictions), rel=1e-12)
    assert r2.value == pytest.approx(skm.r2_score(targets, predictions), rel=1e-12)
    assert rmse.score == int(np.floor(-rmse.value * PPM)) < 0
    assert mae.score == int(np.floor(-mae.value * PPM)) < 0
    assert r2.score == int(np.floor(r2.value * PPM))


def test_r2_of_constant_targets_follows_sklearn() -> None:
    targets = np.full(10, 2.0)
    assert metrics.r2(targets.copy(), targets).value == 1.0 == skm.r2_score(targets, targets)
    assert metrics.r2(targets + 1, targets).value == 0.0 == skm.r2_score(targets, targets + 1)


def test_better_predictions_score_higher_for_every_metric() -> None:
    rng = np.random.default_rng(RNG_SEED)
    labels = rng.integers(0, 2, 400)
    good = np.clip(labels * 0.6 + rng.random(400) * 0.4, 0, 1)[:, None]
    bad = rng.random(400)[:, None]
    for metric in (Metric.ACCURACY, Metric.LOG_LOSS, Metric.ROC_AUC):
        assert (
            metrics.score_predictions(metric, good, labels).score
            > metrics.score_predictions(metric, bad, labels).score
        )
    targets = rng.normal(size=400)
    for metric in (Metric.RMSE, Metric.MAE, Metric.R2):
        assert (
            metrics.score_predictions(metric, targets + 0.1, targets).score
            > metrics.score_predictions(metric, targets + 1.0, targets).score
        )


# ---- shards ------------------------------------------------------------------------------


def test_shard_round_trip() -> None:
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    shard = load_shard(npz(X=X, y=np.array([0, 1, 1, 0])), Metric.ACCURACY)
    assert shard.rows == 4 and shard.y.dtype == np.int64
    np.testing.assert_array_equal(shard.X, X)
    regression = load_shard(npz(X=X, y=np.array([0.5, 1, 2, 3], dtype=np.float32)), Metric.R2)
    assert regression.y.dtype == np.float64
    compressed = io.BytesIO()
    np.savez_compressed(compressed, X=X, y=np.array([0, 1, 1, 0]))
    assert load_shard(compressed.getvalue(), Metric.ROC_AUC).rows == 4


GOOD_X = np.ones((4, 3), dtype=np.float32)
GOOD_Y = np.array([0, 1, 1, 0])


def _lying_header() -> bytes:
    """An .npz whose X header declares far more data than the member holds."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(  # type: ignore[no-untyped-call]
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 1000)}
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("X.npy", header.getvalue() + b"\0" * 16)
        with archive.open("y.npy", "w") as member:
            np.lib.format.write_array(member, GOOD_Y)  # type: ignore[no-untyped-call]
    return buffer.getvalue()


def _pickled_y() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, X=GOOD_X, y=np.array([0, 1, "x", None], dtype=object))
    return buffer.getvalue()


def _npy_only() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, GOOD_X)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, metric",
    [
        (b"not a zip", Metric.ACCURACY),
        (_npy_only(), Metric.ACCURACY),
        (_lying_header(), Metric.ACCURACY),
        (_pickled_y(), Metric.ACCURACY),
        (npz(X=GOOD_X), Metric.ACCURACY),
        (npz(X=GOOD_X, y=GOOD_Y, z=GOOD_Y), Metric.ACCURACY),
        (npz(X=GOOD_X.astype(np.float64), y=GOOD_Y), Metric.ACCURACY),
        (npz(X=np.ones(4, dtype=np.float32), y=GOOD_Y), Metric.ACCURACY),
        (npz(X=np.where(np.eye(4, 3) > 0, np.nan, 1).astype(np.float32), y=GOOD_Y), Metric.RMSE),
        (npz(X=GOOD_X, y=GOOD_Y[:3]), Metric.ACCURACY),
        (npz(X=GOOD_X, y=GOOD_Y.astype(np.float32)), Metric.ACCURACY),
        (npz(X=GOOD_X, y=np.array([0, -1, 1, 0])), Metric.LOG_LOSS),
        (npz(X=GOOD_X, y=np.array([0, 2, 1, 0])), Metric.ROC_AUC),
        (npz(X=GOOD_X, y=np.zeros(4, dtype=np.int64)), Metric.ROC_AUC),
        (npz(X=GOOD_X, y=np.array([0, np.inf, 1, 0])), Metric.RMSE),
        (npz(X=np.ones((0, 3), dtype=np.float32), y=np.zeros(0)), Metric.RMSE),
    ],
)
def test_invalid_shards(data: bytes, metric: Metric) -> None:
    assert code_of(lambda: load_shard(data, metric)) == "shard_invalid"


def test_shard_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    data = npz(X=GOOD_X, y=GOOD_Y)
    monkeypatch.setattr(shards, "MAX_SHARD_BYTES", len(data) - 1)
    assert code_of(lambda: load_shard(data, Metric.ACCURACY)) == "shard_too_large"
    monkeypatch.undo()
    monkeypatch.setattr(shards, "MAX_SHARD_ARRAY_BYTES", 100)
    assert code_of(lambda: load_shard(data, Metric.ACCURACY)) == "shard_too_large"


# ---- scoring models ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cancer() -> Dataset:
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


@pytest.fixture(scope="module")
def cancer_shards(cancer: Dataset) -> dict[Metric, Shard]:
    data = npz(X=cancer[0], y=cancer[1])
    return {m: load_shard(data, m) for m in (Metric.ACCURACY, Metric.LOG_LOSS, Metric.ROC_AUC)}


def _mlp_from_sklearn(classifier: MLPClassifier) -> bytes:
    """sklearn's binary MLP ends in one logistic unit z; softmax([0, z]) is the same model."""
    sizes = [classifier.coefs_[0].shape[0], *classifier.hidden_layer_sizes, 2]
    model = model_zoo.mlp(sizes)
    weights: dict[str, npt.NDArray[Any]] = {}
    last = len(classifier.coefs_) - 1
    for index, (coef, bias) in enumerate(
        zip(classifier.coefs_, classifier.intercepts_, strict=True)
    ):
        if index == last:
            coef = np.hstack([np.zeros_like(coef), coef])
            bias = np.hstack([np.zeros_like(bias), bias])
        weights[f"W{index}"], weights[f"B{index}"] = coef, bias
    return model_zoo.with_weights(model, weights)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # scipy, inside sklearn
def test_trained_logistic_regression_beats_untrained(
    cancer: Dataset, cancer_shards: dict[Metric, Shard]
) -> None:
    X, y = cancer
    fitted = LogisticRegression(max_iter=2000).fit(X, y)
    trained = model_zoo.logistic_regression(fitted.coef_[0], float(fitted.intercept_[0]))
    untrained = model_zoo.logistic_regression(np.zeros(X.shape[1]))
    for metric, shard in cancer_shards.items():
        good, bad = evaluate(trained, shard, metric), evaluate(untrained, shard, metric)
        assert good.score > bad.score, metric
    accuracy = evaluate(trained, cancer_shards[Metric.ACCURACY], Metric.ACCURACY)
    assert accuracy.value == pytest.approx(fitted.score(X, y), abs=1 / len(y))
    auc = evaluate(trained, cancer_shards[Metric.ROC_AUC], Metric.ROC_AUC)
    assert auc.value == pytest.approx(skm.roc_auc_score(y, fitted.predict_proba(X)[:, 1]), abs=1e-3)


def test_trained_mlp_beats_untrained(cancer: Dataset, cancer_shards: dict[Metric, Shard]) -> None:
    X, y = cancer
    fitted = MLPClassifier(hidden_layer_sizes=(16, 16), max_iter=500, random_state=0).fit(X, y)
    trained = _mlp_from_sklearn(fitted)
    untrained = model_zoo.mlp([X.shape[1], 16, 16, 2], seed=3)
    for metric, shard in cancer_shards.items():
        assert evaluate(trained, shard, metric).score > evaluate(untrained, shard, metric).score
    accuracy = evaluate(trained, cancer_shards[Metric.ACCURACY], Metric.ACCURACY)
    assert accuracy.value == pytest.approx(fitted.score(X, y), abs=2 / len(y))


def test_scores_are_deterministic(cancer_shards: dict[Metric, Shard]) -> None:
    model = model_zoo.mlp([30, 32, 2], seed=11)
    for metric, shard in cancer_shards.items():
        first, second = evaluate(model, shard, metric), evaluate(model, shard, metric)
        assert first == second
        assert isinstance(first.score, int)


def test_a_cached_scorer_gives_the_same_score(cancer_shards: dict[Metric, Shard]) -> None:
    job_bytes = model_zoo.mlp([30, 32, 2], seed=1)
    scorer = Scorer.compile(parse_model(job_bytes))
    for seed in (2, 3):
        weights = model_zoo.get_weights(model_zoo.mlp([30, 32, 2], seed=seed))
        submission = model_zoo.with_weights(job_bytes, weights)
        for metric, shard in cancer_shards.items():
            cached = scorer.score(check_same_graph(scorer.graph, submission), shard, metric)
            assert cached == evaluate(submission, shard, metric)
            assert cached == evaluate(submission, shard, metric, scorer=scorer)


def test_a_scorer_rejects_another_graph(cancer_shards: dict[Metric, Shard]) -> None:
    scorer = Scorer.compile(parse_model(model_zoo.mlp([30, 32, 2], seed=1)))
    other = model_zoo.mlp([30, 16, 2], seed=1)
    shard = cancer_shards[Metric.ACCURACY]
    assert code_of(lambda: evaluate(other, shard, Metric.ACCURACY, scorer=scorer)) == (
        "initializer_mismatch"
    )
    assert code_of(lambda: scorer.score(parse_model(other), shard, Metric.ACCURACY)) == (
        "initializer_mismatch"
    )


def test_regression_scores_match_sklearn() -> None:
    X, y = load_diabetes(return_X_y=True)
    X = X.astype(np.float32)
    fitted = LinearRegression().fit(X, y)
    model = model_zoo.linear_regression(fitted.coef_, fitted.intercept_)
    data = npz(X=X, y=y)
    predictions = fitted.predict(X)
    r2 = evaluate(model, load_shard(data, Metric.R2), Metric.R2)
    assert r2.value == pytest.approx(skm.r2_score(y, predictions), abs=1e-5)
    rmse = evaluate(model, load_shard(data, Metric.RMSE), Metric.RMSE)
    assert rmse.value == pytest.approx(np.sqrt(skm.mean_squared_error(y, predictions)), rel=1e-5)
    mae = evaluate(model, load_shard(data, Metric.MAE), Metric.MAE)
    assert mae.score < 0 and mae.value == pytest.approx(
        skm.mean_absolute_error(y, predictions), rel=1e-5
    )


def test_probabilities_are_clipped_before_metrics() -> None:
    """A linear 'classifier' whose outputs leave [0, 1] is scored on clipped outputs."""
    X = np.array([[-1.0], [0.25], [0.75], [2.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    model = model_zoo.linear_regression([1.0])
    shard = load_shard(npz(X=X, y=labels), Metric.LOG_LOSS)
    result = evaluate(model, shard, Metric.LOG_LOSS)
    clipped = np.clip(X[:, 0].astype(np.float64), 0, 1)
    expected = metrics.log_loss(clipped[:, None], labels)
    assert (result.score, result.value) == (expected.score, expected.value)


def test_non_finite_outputs_get_the_worst_score() -> None:
    model = model_zoo.linear_regression(np.full(3, 3e38, dtype=np.float32))
    shard = load_shard(npz(X=np.ones((5, 3), dtype=np.float32), y=np.zeros(5)), Metric.RMSE)
    result = evaluate(model, shard, Metric.RMSE)
    assert result.score == SCORE_MIN and result.has_non_finite_outputs


def test_shard_must_fit_the_model(cancer_shards: dict[Metric, Shard]) -> None:
    shard = cancer_shards[Metric.ACCURACY]
    narrow = model_zoo.logistic_regression(np.ones(5))
    assert code_of(lambda: evaluate(narrow, shard, Metric.ACCURACY)) == "shard_model_mismatch"
    three = load_shard(npz(X=GOOD_X, y=np.array([0, 1, 2, 0])), Metric.ACCURACY)
    binary = model_zoo.logistic_regression(np.ones(3))
    assert code_of(lambda: evaluate(binary, three, Metric.ACCURACY)) == "shard_model_mismatch"
    auc_shard = load_shard(npz(X=GOOD_X, y=GOOD_Y), Metric.ROC_AUC)
    multiclass = model_zoo.softmax_regression(np.ones((3, 3)))
    assert code_of(lambda: evaluate(multiclass, auc_shard, Metric.ROC_AUC)) == (
        "shard_model_mismatch"
    )
    targets = load_shard(npz(X=GOOD_X, y=np.ones(4)), Metric.RMSE)
    assert code_of(lambda: evaluate(multiclass, targets, Metric.RMSE)) == "model_output_invalid"


def test_work_budget() -> None:
    most = work_budget.WORK_BUDGET // 10_000 - work_budget.ROW_OVERHEAD
    work_budget.check_work_budget(10_000, most)
    assert code_of(lambda: work_budget.check_work_budget(10_000, most + 1)) == (
        "work_budget_exceeded"
    )

    # the 10,000-row, 30-64-64-2 case of the architecture fits with room to spare, and
    # 30-146-146-2 is the largest such MLP (docs/evaluation.md)
    def row_cost(hidden: int) -> int:
        return Scorer.compile(parse_model(model_zoo.mlp([30, hidden, hidden, 2]))).row_cost

    work_budget.check_work_budget(10_000, row_cost(64) * 2)
    work_budget.check_work_budget(10_000, row_cost(146))
    assert code_of(lambda: work_budget.check_work_budget(10_000, row_cost(147))) == (
        "work_budget_exceeded"
    )
    big = model_zoo.mlp([1, 256, 256, 2], seed=0)
    rows = 8192
    shard = load_shard(
        npz(X=np.ones((rows, 1), dtype=np.float32), y=np.arange(rows) % 2), Metric.ACCURACY
    )
    assert code_of(lambda: evaluate(big, shard, Metric.ACCURACY)) == "work_budget_exceeded"
    # every tensor together stays far below the RAM, even if all were alive at once
    assert 4 * work_budget.WORK_BUDGET // work_budget.ELEMENT_COST <= 64 * 1024 * 1024


def _graph(
    nodes: list[Any], inits: dict[str, npt.NDArray[Any]], features: int, out: str, out_width: int
) -> bytes:
    graph = helper.make_graph(
        nodes,
        "structure",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", out_width])],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    serialized: bytes = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8
    ).SerializeToString()
    return serialized


def reused_weight_chain(count: int) -> bytes:
    """The review's attack: ``count`` MatMuls that all reuse one 30x30 weight (900 params)."""
    nodes = [
        helper.make_node("MatMul", ["X" if i == 0 else f"h{i}", "W"], [f"h{i + 1}"])
        for i in range(count)
    ]
    return _graph(nodes, {"W": np.eye(30, dtype=np.float32)}, 30, f"h{count}", 30)


ROW_LOOP, VALUE = work_budget.NODE_ROW_COST, work_budget.ELEMENT_COST
F32, I64 = np.float32, np.int64


@pytest.mark.parametrize(
    "model, row_cost",
    [
        # Gemm 30 -> 1 (30 multiply-adds, 1 value, a row loop), Sigmoid (1 value)
        (model_zoo.logistic_regression(np.ones(30)), 30 + VALUE + ROW_LOOP + VALUE),
        # multiply-adds 30*64 + 64*64 + 64*2; values 64, 64, 2 (Gemm) + 64, 64 (Relu) + 2
        (
            model_zoo.mlp([30, 64, 64, 2], seed=0),
            30 * 64 + 64 * 64 + 64 * 2 + VALUE * 260 + 4 * ROW_LOOP,
        ),
        # X [N,6] -> MatMul [6,5] -> [N,5] -> Reshape [N,5] (a copy) -> Add [5] (a row loop)
        (
            _graph(
                [
                    helper.make_node("MatMul", ["X", "W"], ["m"]),
                    helper.make_node("Reshape", ["m", "s"], ["r"]),
                    helper.make_node("Add", ["r", "b"], ["Y"]),
                ],
                {"W": np.ones((6, 5), F32), "s": np.array([0, 5], I64), "b": np.ones(5, F32)},
                6,
                "Y",
                5,
            ),
            (6 * 5 + VALUE * 5 + ROW_LOOP) + VALUE * 5 + (VALUE * 5 + ROW_LOOP),
        ),
        # W1 @ W2 has no rows dimension: charged per row anyway (K = 3), then X @ V (K = 4)
        (
            _graph(
                [
                    helper.make_node("MatMul", ["W1", "W2"], ["V"]),
                    helper.make_node("MatMul", ["X", "V"], ["Y"]),
                ],
                {"W1": np.ones((4, 3), F32), "W2": np.ones((3, 2), F32)},
                4,
                "Y",
                2,
            ),
            (8 * 3 + VALUE * 8 + ROW_LOOP) + (2 * 4 + VALUE * 2 + ROW_LOOP),
        ),
        # Gemm with transA over [N, 1]: sums over the rows into a fixed [1, 1]
        (
            _graph(
                [
                    helper.make_node("Gemm", ["X", "X"], ["G"], transA=1),
                    helper.make_node("Add", ["X", "G"], ["Y"]),
                ],
                {},
                1,
                "Y",
                1,
            ),
            (1 + VALUE + ROW_LOOP) + (VALUE + ROW_LOOP),
        ),
    ],
    ids=["logistic", "mlp", "reshape-add", "weights-only", "over-rows"],
)
def test_row_cost_follows_the_graph(model: bytes, row_cost: int) -> None:
    assert Scorer.compile(parse_model(model)).row_cost == row_cost


@pytest.mark.parametrize(
    "nodes, inits, features",
    [
        # a batched MatMul: [N, 1, 2, 2] @ [512, 2, 2] runs 512 tiny GEMMs per row
        (
            [
                helper.make_node("Reshape", ["X", "s"], ["r"]),
                helper.make_node("MatMul", ["r", "B"], ["m"]),
                helper.make_node("Reshape", ["m", "f"], ["Y"]),
            ],
            {
                "s": np.array([0, 1, 2, 2], I64),
                "B": np.ones((512, 2, 2), F32),
                "f": np.array([0, 2048], I64),
            },
            4,
        ),
        # broadcasting in spans of 2: [N, 2, 2] + [2]
        (
            [
                helper.make_node("Reshape", ["X", "s"], ["r"]),
                helper.make_node("Add", ["r", "b"], ["a"]),
                helper.make_node("Reshape", ["a", "f"], ["Y"]),
            ],
            {"s": np.array([0, 2, 2], I64), "b": np.ones(2, F32), "f": np.array([0, 4], I64)},
            4,
        ),
        # Softmax over the rows
        (
            [
                helper.make_node("MatMul", ["X", "W"], ["m"]),
                helper.make_node("Softmax", ["m"], ["Y"], axis=0),
            ],
            {"W": np.ones((4, 4), F32)},
            4,
        ),
    ],
    ids=["batched-matmul", "rank-3-broadcast", "softmax-over-rows"],
)
def test_structures_whose_cost_escapes_the_model_are_refused(
    nodes: list[Any], inits: dict[str, npt.NDArray[Any]], features: int
) -> None:
    width = int(inits["f"][1]) if "f" in inits else 4
    model = parse_model(_graph(nodes, inits, features, "Y", width))
    assert code_of(lambda: Scorer.compile(model)) == "model_invalid"


class _NoInference:
    """Stands in for ONNX Runtime: any attempt to build or run a session fails the test."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("a session was built")

    def run(self, *args: object) -> None:
        raise AssertionError("inference ran")


def test_reused_weights_cannot_hide_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """64 MatMuls on one 30x30 weight: 900 params, but row_cost counts every node."""
    model = reused_weight_chain(64)
    parsed = parse_model(model)
    scorer = Scorer.compile(parsed)
    assert parsed.params == 900
    assert scorer.row_cost == 64 * (30 * 30 + VALUE * 30 + ROW_LOOP)
    rows = 100_000
    buffer = io.BytesIO()
    np.savez_compressed(buffer, X=np.zeros((rows, 30), dtype=np.float32), y=np.arange(rows) % 2)
    shard = load_shard(buffer.getvalue(), Metric.ACCURACY)
    stub = dataclasses.replace(scorer, session=_NoInference.__new__(_NoInference))
    assert code_of(lambda: stub.score(parsed, shard, Metric.ACCURACY)) == "work_budget_exceeded"
    monkeypatch.setattr(ort, "InferenceSession", _NoInference)
    assert code_of(lambda: evaluate(model, shard, Metric.ACCURACY)) == "work_budget_exceeded"
    # the review's 5,000-node version: refused by the node cap, and by the budget without it
    assert code_of(lambda: parse_model(reused_weight_chain(5000))) == "too_many_nodes"
    monkeypatch.setattr(onnx_checks, "MAX_NODES", 5000)
    assert code_of(lambda: evaluate(reused_weight_chain(5000), shard, Metric.ACCURACY)) == (
        "work_budget_exceeded"
    )


def test_an_honest_mlp_passes_the_budget(cancer_shards: dict[Metric, Shard]) -> None:
    model = model_zoo.mlp([30, 64, 64, 2], seed=0)
    scorer = Scorer.compile(parse_model(model))
    assert scorer.row_cost < 3 * scorer.graph.params
    work_budget.check_work_budget(10_000, scorer.row_cost)
    rows = 10_000
    X = np.random.default_rng(RNG_SEED).standard_normal((rows, 30)).astype(np.float32)
    shard = load_shard(npz(X=X, y=(X[:, 0] > 0).astype(np.int64)), Metric.ROC_AUC)
    assert evaluate(model, shard, Metric.ROC_AUC).rows == rows
    assert scorer.score(scorer.graph, shard, Metric.ROC_AUC).rows == rows


def test_session_options_are_pinned() -> None:
    options = evaluation.session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    assert not options.enable_cpu_mem_arena and not options.enable_mem_pattern


def test_evaluation_fields(cancer_shards: dict[Metric, Shard]) -> None:
    model = model_zoo.logistic_regression(np.ones(30))
    result = evaluate(model, cancer_shards[Metric.ACCURACY], Metric.ACCURACY)
    assert result == Evaluation(result.score, Metric.ACCURACY, 569, 31, result.value)
    assert 0 <= result.score <= PPM


def test_memory_budget() -> None:
    """A wide layer on many rows is refused before it runs, whatever its parameter count."""
    assert Scorer.compile(parse_model(model_zoo.mlp([1, 4096, 2], seed=0))).row_elements == 4096
    wide = _graph(
        [helper.make_node("Gemm", ["X", "W", "B"], ["Y"])],
        {"W": np.ones((1, 4096), F32), "B": np.zeros(4096, F32)},
        1,
        "Y",
        4096,
    )
    rows = work_budget.MAX_TENSOR_BYTES // (4 * 4096) + 1
    shard = load_shard(
        npz(X=np.ones((rows, 1), dtype=np.float32), y=np.arange(rows) % 2), Metric.ACCURACY
    )
    work_budget.check_work_budget(rows, Scorer.compile(parse_model(wide)).row_cost)
    assert code_of(lambda: evaluate(wide, shard, Metric.ACCURACY)) == "memory_budget_exceeded"
    fits = load_shard(
        npz(X=np.ones((rows - 1, 1), dtype=np.float32), y=np.arange(rows - 1) % 2), Metric.ACCURACY
    )
    assert evaluate(wide, fits, Metric.ACCURACY).rows == rows - 1


@pytest.mark.parametrize(
    "shape, is_accepted",
    [
        ([0, 4], True),
        ([0, -1], True),
        ([-1, 4], False),
        ([-1, 2], False),
        ([2, -1], False),
    ],
)
def test_every_tensor_keeps_the_batch_dimension(shape: list[int], is_accepted: bool) -> None:
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
            numpy_helper.from_array(np.array(shape, dtype=np.int64), "shape"),
            numpy_helper.from_array(np.ones((4, 1), dtype=np.float32), "W0"),
            numpy_helper.from_array(np.zeros(1, dtype=np.float32), "B0"),
        ],
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    model = parse_model(onnx_model.SerializeToString())
    if is_accepted:
        assert Scorer.compile(model).row_elements == 4
    else:
        assert code_of(lambda: Scorer.compile(model)) == "model_invalid"
