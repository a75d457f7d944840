"""Train a job's global model on local data with scikit-learn, warm-started from the global
weights, and write the result back into the job's exact graph (``model_zoo.with_weights``).

Each model-zoo graph maps onto an estimator:

- ``logistic`` (``W0 [d,1]``, Sigmoid) and ``softmax`` (``W0 [d,K]``, Softmax):
  ``LogisticRegression(warm_start=True)`` with ``coef_ = W0.T``, ``intercept_ = B0``;
- ``linear`` (``W0 [d,1]``, no activation): ``SGDRegressor`` from ``coef_init``/``intercept_init``;
- ``mlp`` (``W0 B0 W1 B1 ...`` with Relu): ``MLPClassifier`` (softmax head) or ``MLPRegressor``
  (linear head) with ``partial_fit`` from the global layers. A two-class softmax head is one
  logistic unit in scikit-learn: ``softmax(z0, z1) = sigmoid(z1 - z0)``, mapped both ways.

The job's recipe is JSON; the keys read here are ``epochs`` (passes, default 20, at most 10000),
``learning_rate`` (if set), ``l2`` (ridge penalty, default 0) and, if the sponsor published
them, ``feature_mean`` / ``feature_std`` (the z-scoring the held-out shards already have).
A value of the wrong type or range is the sponsor's mistake (:func:`recipe_of` raises
:class:`BadRecipe`; ``deml job create`` refuses it, ``deml train`` is a ``TrainingError``).
scikit-learn is imported lazily: ``pip install 'deml-console[train]'``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import numpy as np
import numpy.typing as npt
import onnx

from .model_zoo import get_weights, with_weights
from .plots import MissingExtra

__all__ = ["BadRecipe", "TrainingError", "TrainRecipe", "recipe_of", "train_model"]

Weights = dict[str, npt.NDArray[Any]]
#: Called after each pass with ``(done, total)``.
OnEpoch = Callable[[int, int], None]


class TrainingError(ValueError):
    code: ClassVar[str] = "cannot_train"


@dataclass(frozen=True, slots=True)
class TrainRecipe:
    epochs: int = 20
    learning_rate: float | None = None
    l2: float = 0.0
    feature_mean: list[float] | None = None
    feature_std: list[float] | None = None

    @classmethod
    def parse(cls, text: str, *, features: int | None = None) -> TrainRecipe:
        """The recipe a job's sponsor posted. Text that is not a JSON object is a recipe for
        people: train with the defaults. Values of the wrong type or out of range (checked
        against a model of ``features`` inputs, if given) are the sponsor's mistake: a
        :class:`TrainingError` that names the field."""
        try:
            return recipe_of(text, features=features)
        except BadRecipe as exc:
            raise _sponsors_fault(exc) from exc

    def check_features(self, features: int) -> None:
        """``feature_mean`` / ``feature_std`` have one value per input of the model."""
        for name in ("feature_mean", "feature_std"):
            values = getattr(self, name)
            if values is not None and len(values) != features:
                raise _sponsors_fault(
                    BadRecipe(f"{name} has {len(values)} values; the model takes {features}")
                )


def _sponsors_fault(problem: BadRecipe) -> TrainingError:
    return TrainingError(
        f"the job's recipe, set by its sponsor, cannot be followed: {problem}. Not your data: "
        "the sponsor must post a fixed job (or train with your own --trainer-cmd)"
    )


class BadRecipe(ValueError):
    """A recipe field of the wrong type or out of range (the message names the field)."""

    code: ClassVar[str] = "bad_job_option"


MAX_EPOCHS: Final = 10_000


def recipe_of(text: str, *, features: int | None = None) -> TrainRecipe:
    """:meth:`TrainRecipe.parse`, raising :class:`BadRecipe` (for ``deml job create``)."""
    try:
        raw = json.loads(text) if text.strip() else {}
    except ValueError:
        raw = {}  # a recipe meant for people: train with the defaults
    if not isinstance(raw, dict):
        raw = {}
    recipe = TrainRecipe(
        epochs=_whole(raw, "epochs", 20, MAX_EPOCHS),
        learning_rate=_number(raw, "learning_rate", None, positive=True),
        l2=_number(raw, "l2", 0.0, positive=False),
        feature_mean=_numbers(raw, "feature_mean", features, positive=False),
        feature_std=_numbers(raw, "feature_std", features, positive=True),
    )
    if (recipe.feature_mean is None) != (recipe.feature_std is None):
        raise BadRecipe("feature_mean and feature_std go together: give both or neither")
    return recipe


def _is_finite(value: object) -> bool:
    """A JSON number (not a bool) that is finite as a float (``1e999`` and ``NaN`` are not)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _whole(raw: dict[str, Any], name: str, default: int, most: int) -> int:
    value = raw.get(name, default)
    if isinstance(value, float) and value.is_integer() and abs(value) <= most:
        value = int(value)  # 20.0
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
        raise BadRecipe(f"{name} must be a whole number from 1 to {most}; got {value!r}")
    return value


def _number(raw: dict[str, Any], name: str, default: Any, *, positive: bool) -> Any:
    value = raw.get(name, default)
    if value is None and default is None:
        return None
    least = "more than 0" if positive else "0 or more"
    if not _is_finite(value) or value < 0 or (positive and value == 0):
        raise BadRecipe(f"{name} must be a finite number, {least}; got {value!r}")
    return float(value)


def _numbers(
    raw: dict[str, Any], name: str, features: int | None, *, positive: bool
) -> list[float] | None:
    value = raw.get(name)
    if value is None:
        return None
    each = "more than 0" if positive else "finite"
    if not isinstance(value, list) or not all(
        _is_finite(v) and (not positive or v > 0) for v in value
    ):
        raise BadRecipe(f"{name} must be a list of numbers, each {each}")
    if features is not None and len(value) != features:
        raise BadRecipe(f"{name} has {len(value)} values; the model takes {features}")
    return [float(v) for v in value]


def _kind(model: bytes) -> tuple[str, int]:
    """``(kind, layers)``: kind is logistic | softmax | linear | mlp | mlp-linear."""
    graph = onnx.load_from_string(model).graph
    ops = [node.op_type for node in graph.node]
    layers = ops.count("Gemm")
    if layers == 1:
        tail = {"Sigmoid": "logistic", "Softmax": "softmax"}.get(ops[-1], "linear")
        return tail, 1
    if layers > 1 and set(ops) <= {"Gemm", "Relu", "Softmax"}:
        return ("mlp" if ops[-1] == "Softmax" else "mlp-linear"), layers
    raise TrainingError(f"no scikit-learn trainer for a graph of {ops}; use --trainer-cmd")


def train_model(
    model: bytes,
    X: npt.NDArray[np.float32],
    y: npt.NDArray[Any],
    recipe: TrainRecipe,
    on_epoch: OnEpoch | None = None,
) -> bytes:
    """The job's graph with weights trained on ``(X, y)`` from the model's own weights."""
    try:
        import sklearn  # noqa: F401  (here only to say what is missing)
    except ImportError as exc:
        raise MissingExtra(
            "training needs scikit-learn: pip install 'deml-console[train]'"
        ) from exc
    weights = get_weights(model)
    kind, layers = _kind(model)
    features = np.asarray(X, dtype=np.float64)
    expected = weights["W0"].shape[0]
    if features.shape[1] != expected:
        raise TrainingError(
            f"the model takes {expected} features; the data has {features.shape[1]}"
        )
    recipe.check_features(expected)
    if recipe.feature_mean is not None and recipe.feature_std is not None:
        features = (features - np.asarray(recipe.feature_mean)) / np.asarray(recipe.feature_std)
    trainers = {"logistic": _linear_classifier, "softmax": _linear_classifier}
    trainers |= {"linear": _linear_regressor}
    if kind in trainers:
        new = trainers[kind](weights, features, y, recipe)
        if on_epoch is not None:
            on_epoch(recipe.epochs, recipe.epochs)
    else:
        new = _mlp(weights, layers, features, y, recipe, kind=kind, on_epoch=on_epoch)
    if not all(np.all(np.isfinite(v)) for v in new.values()):
        raise TrainingError("training diverged (weights not finite); lower the learning rate")
    return with_weights(model, new)


def _linear_classifier(
    w: Weights, X: npt.NDArray[Any], y: npt.NDArray[Any], r: TrainRecipe
) -> Weights:
    from sklearn.linear_model import LogisticRegression

    classes = max(2, w["W0"].shape[1])
    _check_labels(y, classes)
    est = LogisticRegression(
        warm_start=True,
        max_iter=max(1, r.epochs),
        C=1.0 / (r.l2 * len(y)) if r.l2 > 0 else 1e12,
    )
    is_pair = w["W0"].shape[1] == 2
    coef, bias = w["W0"].astype(np.float64), w["B0"].astype(np.float64)
    if is_pair:
        coef, bias = _pair_in(coef, bias)
    est.coef_, est.intercept_ = coef.T.copy(), bias.copy()
    _quietly(lambda: est.fit(X, y))
    coef, bias = est.coef_.T, est.intercept_
    if is_pair:
        coef, bias = _pair_out(coef, bias)
    return {"W0": coef, "B0": bias}


def _pair_in(
    coef: npt.NDArray[Any], bias: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """A two-class softmax layer as scikit-learn's one logistic unit: sigmoid(z1 - z0)."""
    return (coef[:, 1] - coef[:, 0]).reshape(-1, 1), bias[1:] - bias[:1]


def _pair_out(
    coef: npt.NDArray[Any], bias: npt.NDArray[Any]
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """One logistic unit back as a two-class softmax layer with the same probabilities."""
    half, shift = coef[:, 0] / 2, bias[0] / 2
    return np.stack([-half, half], axis=1), np.array([-shift, shift])


def _linear_regressor(
    w: Weights, X: npt.NDArray[Any], y: npt.NDArray[Any], r: TrainRecipe
) -> Weights:
    from sklearn.linear_model import SGDRegressor

    if w["W0"].shape[1] != 1:
        raise TrainingError("a multi-target linear model has no scikit-learn trainer here")
    est = SGDRegressor(
        max_iter=max(1, r.epochs),
        alpha=r.l2,
        learning_rate="constant" if r.learning_rate else "invscaling",
        eta0=r.learning_rate or 0.01,
        random_state=0,
        tol=None,
    )
    coef, intercept = w["W0"][:, 0].astype(np.float64), w["B0"].astype(np.float64)
    _quietly(lambda: est.fit(X, y.astype(np.float64), coef_init=coef, intercept_init=intercept))
    return {"W0": est.coef_.reshape(-1, 1), "B0": est.intercept_}


def _mlp(
    w: Weights,
    layers: int,
    X: npt.NDArray[Any],
    y: npt.NDArray[Any],
    r: TrainRecipe,
    *,
    kind: str,
    on_epoch: OnEpoch | None,
) -> Weights:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    coefs = [w[f"W{i}"].astype(np.float64) for i in range(layers)]
    biases = [w[f"B{i}"].astype(np.float64) for i in range(layers)]
    hidden = tuple(c.shape[1] for c in coefs[:-1])
    options: dict[str, Any] = {"hidden_layer_sizes": hidden, "random_state": 0, "alpha": r.l2}
    if r.learning_rate:
        options["learning_rate_init"] = r.learning_rate
    classes = coefs[-1].shape[1]
    is_pair = kind == "mlp" and classes == 2
    if is_pair:
        coefs[-1], biases[-1] = _pair_in(coefs[-1], biases[-1])
    if kind == "mlp":
        _check_labels(y, classes)
        est: Any = MLPClassifier(**options)
        _quietly(lambda: est.partial_fit(X, y, classes=np.arange(classes)))
    else:
        est = MLPRegressor(**options)
        _quietly(lambda: est.partial_fit(X, y.astype(np.float64)))
    est.coefs_, est.intercepts_ = coefs, biases  # the global model, not sklearn's init
    del est._optimizer  # a fresh optimizer from the global weights
    for epoch in range(r.epochs):
        _quietly(lambda: est.partial_fit(X, y))
        if on_epoch is not None:
            on_epoch(epoch + 1, r.epochs)
    new_coefs, new_biases = list(est.coefs_), list(est.intercepts_)
    if is_pair:
        new_coefs[-1], new_biases[-1] = _pair_out(new_coefs[-1], new_biases[-1])
    found = {f"W{i}": c for i, c in enumerate(new_coefs)}
    return found | {f"B{i}": b for i, b in enumerate(new_biases)}


def _check_labels(y: npt.NDArray[Any], classes: int) -> None:
    labels = set(np.unique(y).tolist())
    if not labels <= set(range(classes)):
        raise TrainingError(
            f"labels must be 0..{classes - 1} for this model; the data has {sorted(labels)[:10]}"
        )
    if len(labels) < 2:
        raise TrainingError(f"the data has one class only ({labels}); a classifier needs two")


def _quietly(step: Callable[[], object]) -> None:
    """scikit-learn warns when ``max_iter`` passes end before convergence: expected here."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # scipy 1.16 vs sklearn 1.6
        step()
