"""``python -m riscv.memory`` measures a case the DApp admits: its largest shard passes the
shard checks and the work and memory budgets, at the largest array size allowed."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dapp import policies
from dapp.evaluation import Scorer
from dapp.onnx_checks import parse_model
from dapp.shards import MAX_SHARD_ARRAY_BYTES, load_shard
from dapp.work_budget import WORK_BUDGET
from deml_console.model_zoo import logistic_regression
from deml_protocol.errors import WorkBudgetExceeded
from deml_protocol.metrics import Metric
from riscv.memory import close_cases, largest_shard


def test_the_largest_shard_is_admitted_and_at_the_limit() -> None:
    shard = load_shard(largest_shard(), Metric.ACCURACY)
    rows, features = shard.X.shape
    arrays = shard.X.nbytes + 8 * rows
    assert MAX_SHARD_ARRAY_BYTES - 8 * rows <= arrays <= MAX_SHARD_ARRAY_BYTES
    model = parse_model(logistic_regression(np.ones(features) / features))
    Scorer.compile(model, max_rows=rows)  # raises if a budget refuses it


def test_the_measured_closes_are_admitted_and_at_the_close_budget() -> None:
    """The two closes ``riscv.memory`` measures are the largest their rule admits: one width
    more and posting refuses the job (the close's work, ``dapp.work_budget.close_work``)."""
    for case in close_cases():
        rule = policies.aggregation(case.aggregation)
        rule.check(trim_percent=0, max_models=case.models, weight_bytes=4 * case.values)
        assert case.work > 0.99 * WORK_BUDGET
        wider = replace(case, width=case.width + 1)
        with pytest.raises(WorkBudgetExceeded):
            rule.check(trim_percent=0, max_models=case.models, weight_bytes=4 * wider.values)
