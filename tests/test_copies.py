"""Copy detection by commit order and weight sketches (``dapp/copies.py``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from dapp.copies import _near, _read, is_near, later_copies, weights_sketch
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


def pairwise_later_copies(in_commit_order: list[Submission]) -> set[str]:
    """The rule as written: each model against each earlier original, one pair at a time."""
    copies: set[str] = set()
    originals: list[tuple[Any, Any]] = []
    for sub in in_commit_order:
        sketch = _read(sub.sketch)
        if any(_near(sketch, original) for original in originals):
            copies.add(sub.client)
        else:
            originals.append(sketch)
    return copies


def raw_sketch(positions: Any, values: Any) -> Submission:
    order = np.argsort(positions)
    sketch = np.asarray(positions)[order].astype("<i8").tobytes()
    sketch += np.asarray(values)[order].astype("<f4").tobytes()
    return Submission(client="", commitment=b"", bond=Amount(0), commit_input=0, sketch=sketch)


def test_comparing_with_all_originals_at_once_decides_as_pair_by_pair() -> None:
    """``later_copies`` compares a model with every earlier original in one array step; on
    sketches that share some, most or all positions, with values equal, near or far (and
    zeros, and sketches of other sizes), it finds exactly the pairwise rule's copies."""
    rng = np.random.default_rng(3)
    found = 0
    for trial in range(300):
        k = int(rng.choice([1, 5, 256]))
        universe = int(rng.choice([k, k + 3, 2 * k, 1000]))
        base_positions = rng.choice(universe, k, replace=False)
        base_values = rng.normal(size=k).astype(np.float32)
        subs = []
        for i in range(int(rng.integers(1, 30))):
            positions, values = base_positions.copy(), base_values.copy()
            if rng.random() < 0.3:  # move up to a fifth of the positions elsewhere
                moved_at = np.unique(rng.integers(0, k, size=int(rng.integers(0, k // 5 + 1))))
                free = np.setdiff1d(np.arange(universe + 50), positions)
                positions[moved_at] = rng.choice(free, moved_at.size, replace=False)
            if rng.random() < 0.5:
                scale = float(rng.choice([1e-6, 1e-4, 1e-3]))
                values = (values * (1 + rng.normal(0, scale, k))).astype(np.float32)
            if rng.random() < 0.2:  # an unrelated model
                positions = rng.choice(universe, k, replace=False)
                values = rng.normal(size=k).astype(np.float32)
            if rng.random() < 0.1:
                values[:] = 0
            if rng.random() < 0.05:  # another size (one graph never gives it)
                positions, values = positions[: max(1, k - 1)], values[: max(1, k - 1)]
            subs.append(replace(raw_sketch(positions, values), client=f"{trial}-{i}"))
        expected = pairwise_later_copies(subs)
        assert later_copies(subs) == expected, trial
        found += len(expected)
    assert found > 500  # copies were there to find
