"""Local training on a client's private data: read the global model's weights, improve them,
write them back into the same graph (so the DApp's same-graph check passes).

Full-batch gradient descent in float64 numpy: deterministic for the same data and recipe,
which makes demos and tests reproducible. Built-in trainers cover the model zoo's binary
logistic regression; other trainers plug in the same way (weights in, weights out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .model_zoo import get_weights, with_weights


@dataclass(frozen=True, slots=True)
class Recipe:
    """What a job asks clients to do; the job's ``recipe`` string carries these as JSON."""

    epochs: int = 100
    learning_rate: float = 0.5
    l2: float = 0.0


def train_logistic_regression(
    model: bytes, X: npt.NDArray[np.floating], y: npt.NDArray[np.integer], recipe: Recipe = Recipe()
) -> bytes:
    """Gradient descent on mean log-loss, starting from the model's own weights."""
    weights = get_weights(model)
    if set(weights) != {"W0", "B0"} or weights["W0"].shape[1:] != (1,):
        raise ValueError("not a model-zoo logistic regression (weights W0 [d,1], B0 [1])")
    coef = weights["W0"].astype(np.float64)
    intercept = weights["B0"].astype(np.float64)
    features = np.asarray(X, dtype=np.float64)
    target = np.asarray(y, dtype=np.float64).reshape(-1, 1)
    rows = features.shape[0]
    for _ in range(recipe.epochs):
        probabilities = 1.0 / (1.0 + np.exp(-(features @ coef + intercept)))
        error = probabilities - target
        coef -= recipe.learning_rate * (features.T @ error / rows + recipe.l2 * coef)
        intercept -= recipe.learning_rate * error.mean(axis=0)
    return with_weights(model, {"W0": coef, "B0": intercept})
