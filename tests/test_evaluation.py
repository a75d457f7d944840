"""Metrics against scikit-learn, shard validation, and scoring models with ONNX Runtime."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import sklearn.metrics as skm
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from dapp import evaluation, metrics, shards
from dapp.errors import Rejected
from dapp.evaluation import Evaluation, Scorer, evaluate
from dapp.metrics import PPM, SCORE_MIN, Metric
from dapp.onnx_checks import check_same_graph, parse_model
from dapp.shards import Shard, load_shard
from deml_console import model_zoo

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


def random_probabilities(rng: np.random.Generator, rows: int,
                         classes: int) -> npt.NDArray[np.float64]:
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
        skm.log_loss(labels, positive), rel=1e-9)
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
        as_float32.astype(np.float64), labels)


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
    rmse, mae, r2 = (metrics.rmse(predictions, targets), metrics.mae(predictions, targets),
                     metrics.r2(predictions, targets))
    assert rmse.value == pytest.approx(np.sqrt(skm.mean_squared_error(targets, predictions)),
                                       rel=1e-12)
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
        assert (metrics.score_predictions(metric, good, labels).score
                > metrics.score_predictions(metric, bad, labels).score)
    targets = rng.normal(size=400)
    for metric in (Metric.RMSE, Metric.MAE, Metric.R2):
        assert (metrics.score_predictions(metric, targets + 0.1, targets).score
                > metrics.score_predictions(metric, targets + 1.0, targets).score)


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
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 1000)})
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


@pytest.mark.parametrize("data, metric", [
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
])
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
    for index, (coef, bias) in enumerate(zip(classifier.coefs_, classifier.intercepts_,
                                             strict=True)):
        if index == last:
            coef = np.hstack([np.zeros_like(coef), coef])
            bias = np.hstack([np.zeros_like(bias), bias])
        weights[f"W{index}"], weights[f"B{index}"] = coef, bias
    return model_zoo.with_weights(model, weights)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # scipy, inside sklearn
def test_trained_logistic_regression_beats_untrained(
        cancer: Dataset, cancer_shards: dict[Metric, Shard]) -> None:
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
    assert auc.value == pytest.approx(
        skm.roc_auc_score(y, fitted.predict_proba(X)[:, 1]), abs=1e-3)


def test_trained_mlp_beats_untrained(cancer: Dataset,
                                     cancer_shards: dict[Metric, Shard]) -> None:
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
        "initializer_mismatch")
    assert code_of(lambda: scorer.score(parse_model(other), shard, Metric.ACCURACY)) == (
        "initializer_mismatch")


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
    assert rmse.value == pytest.approx(np.sqrt(skm.mean_squared_error(y, predictions)),
                                       rel=1e-5)
    mae = evaluate(model, load_shard(data, Metric.MAE), Metric.MAE)
    assert mae.score < 0 and mae.value == pytest.approx(
        skm.mean_absolute_error(y, predictions), rel=1e-5)


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
        "shard_model_mismatch")
    targets = load_shard(npz(X=GOOD_X, y=np.ones(4)), Metric.RMSE)
    assert code_of(lambda: evaluate(multiclass, targets, Metric.RMSE)) == "model_output_invalid"


def test_work_budget() -> None:
    most = evaluation.WORK_BUDGET_ROW_PARAMS // 10_000 - evaluation.ROW_OVERHEAD_PARAMS
    evaluation.check_work_budget(10_000, most)
    assert code_of(lambda: evaluation.check_work_budget(10_000, most + 1)) == (
        "work_budget_exceeded")
    # the 10,000-row, 30-64-64-2 case of the architecture fits with room to spare
    evaluation.check_work_budget(10_000, 6274 * 5)
    rows = 8192
    params_needed = evaluation.WORK_BUDGET_ROW_PARAMS // rows + 1
    hidden = int(np.sqrt(params_needed)) + 1
    big = model_zoo.mlp([1, hidden, hidden, 2], seed=0)
    shard = load_shard(npz(X=np.ones((rows, 1), dtype=np.float32),
                           y=np.arange(rows) % 2), Metric.ACCURACY)
    assert code_of(lambda: evaluate(big, shard, Metric.ACCURACY)) == "work_budget_exceeded"


def test_session_options_are_pinned() -> None:
    import onnxruntime as ort

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
    wide = model_zoo.mlp([1, 4096, 2], seed=0)
    scorer = Scorer.compile(parse_model(wide))
    assert scorer.row_elements == 4096
    rows = evaluation.MAX_TENSOR_BYTES // (4 * 4096) + 1
    shard = load_shard(npz(X=np.ones((rows, 1), dtype=np.float32), y=np.arange(rows) % 2),
                       Metric.ACCURACY)
    assert code_of(lambda: evaluate(wide, shard, Metric.ACCURACY)) == "memory_budget_exceeded"
    fits = load_shard(npz(X=np.ones((rows - 1, 1), dtype=np.float32),
                          y=np.arange(rows - 1) % 2), Metric.ACCURACY)
    assert evaluate(wide, fits, Metric.ACCURACY).rows == rows - 1


@pytest.mark.parametrize("shape, is_accepted", [
    ([0, 4], True), ([0, -1], True), ([-1, 4], False), ([-1, 2], False), ([2, -1], False),
])
def test_every_tensor_keeps_the_batch_dimension(shape: list[int], is_accepted: bool) -> None:
    nodes = [helper.make_node("Reshape", ["X", "shape"], ["flat"]),
             helper.make_node("Gemm", ["flat", "W0", "B0"], ["prediction"])]
    graph = helper.make_graph(
        nodes, "reshape",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(np.array(shape, dtype=np.int64), "shape"),
                     numpy_helper.from_array(np.ones((4, 1), dtype=np.float32), "W0"),
                     numpy_helper.from_array(np.zeros(1, dtype=np.float32), "B0")])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                   ir_version=8)
    model = parse_model(onnx_model.SerializeToString())
    if is_accepted:
        assert Scorer.compile(model).row_elements == 4
    else:
        assert code_of(lambda: Scorer.compile(model)) == "model_invalid"
