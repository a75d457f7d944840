"""Copy detection by commit order and weight sketches (``dapp/copies.py``)."""

from __future__ import annotations

import numpy as np

from dapp.copies import is_near, later_copies, weights_sketch
from dapp.onnx_checks import parse_model
from dapp.records import Amount, Submission
from deml_console.model_zoo import mlp, with_weights

BASE = mlp([30, 16, 2], seed=1)


def moved(seed: int, scale: float = 0.05) -> bytes:
    """BASE after some honest-looking training: every weight moved a little."""
    rng = np.random.default_rng(seed)
    weights = parse_model(BASE).weights
    return with_weights(BASE, {k: v + rng.normal(0, scale, v.shape) for k, v in weights.items()})


def nudged(model: bytes, how: str) -> bytes:
    weights = {k: v.copy() for k, v in parse_model(model).weights.items()}
    first = next(iter(weights))
    flat = weights[first].reshape(-1)
    if how == "ulp":
        flat[0] = np.nextafter(flat[0], np.float32(np.inf))
    elif how == "noise":  # every weight, far below 1/10,000 of its size
        for k, v in weights.items():
            weights[k] = v * np.float32(1 + 1e-6)
    elif how == "one weight 1%":  # beyond the tolerance: a different model
        flat[int(np.argmax(np.abs(flat)))] *= np.float32(1.01)
    return with_weights(model, weights)


def submission(client: str, model: bytes) -> Submission:
    sketch = weights_sketch(parse_model(model), parse_model(BASE))
    return Submission(client=client, commitment=b"", bond=Amount(0), commit_input=0, sketch=sketch)


def test_near_copies_of_an_earlier_commit_are_copies_and_honest_models_are_not() -> None:
    author, other = moved(1), moved(2)
    subs = [
        submission("author", author),
        submission("other", other),
        submission("ulp", nudged(author, "ulp")),
        submission("noise", nudged(author, "noise")),
        submission("exact", author),
        submission("changed", nudged(author, "one weight 1%")),
    ]
    assert later_copies(subs) == {"ulp", "noise", "exact"}
    # commit order decides: the same models, the copy committed first, is the author now
    assert later_copies([subs[2], subs[0]]) == {"author"}


def test_near_copies_of_the_global_model_are_told_at_once() -> None:
    base = parse_model(BASE)
    assert is_near(parse_model(nudged(BASE, "ulp")), base)
    assert is_near(parse_model(nudged(BASE, "noise")), base)
    assert not is_near(parse_model(nudged(BASE, "one weight 1%")), base)
    assert not is_near(parse_model(moved(3)), base)


def test_the_sketch_keeps_the_weights_that_moved() -> None:
    weights = parse_model(BASE).weights
    changed = {k: v.copy() for k, v in weights.items()}
    last = list(changed)[-1]
    changed[last].reshape(-1)[0] += np.float32(3.0)  # one weight moved a lot
    sketch = weights_sketch(parse_model(with_weights(BASE, changed)), parse_model(BASE))
    count = len(sketch) // 12
    positions = np.frombuffer(sketch[: 8 * count], dtype="<i8")
    total = sum(v.size for v in weights.values())
    assert count == 256 and total - weights[last].size in positions
