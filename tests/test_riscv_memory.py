"""``python -m riscv.memory`` measures a case the DApp admits: its largest shard passes the
shard checks and the work and memory budgets, at the largest array size allowed."""

from __future__ import annotations

import numpy as np

from dapp.evaluation import Scorer
from dapp.onnx_checks import parse_model
from dapp.shards import MAX_SHARD_ARRAY_BYTES, load_shard
from deml_console.model_zoo import logistic_regression
from deml_protocol.metrics import Metric
from riscv.memory import largest_shard


def test_the_largest_shard_is_admitted_and_at_the_limit() -> None:
    shard = load_shard(largest_shard(), Metric.ACCURACY)
    rows, features = shard.X.shape
    arrays = shard.X.nbytes + 8 * rows
    assert MAX_SHARD_ARRAY_BYTES - 8 * rows <= arrays <= MAX_SHARD_ARRAY_BYTES
    model = parse_model(logistic_regression(np.ones(features) / features))
    Scorer.compile(model, max_rows=rows)  # raises if a budget refuses it
