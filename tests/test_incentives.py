"""The strategy simulator (``bench/incentives.py``) plays whole jobs through the real input
path; this checks it is a fair judge: deterministic, seeded, and its jobs pay what they hold."""

from __future__ import annotations

from bench.incentives import ESCROW, load_task, run_job


def test_the_simulator_is_deterministic_and_its_jobs_pay_at_most_the_escrow() -> None:
    task = load_task("breast_cancer")
    sybils = "3 sybils (1-ULP copies of own work)"
    first = run_job(task, "non-iid", 3, sybils)
    assert run_job(task, "non-iid", 3, sybils) == first
    assert run_job(task, "non-iid", 4, sybils) != first  # the seed reaches the data split
    # paid to the sybils and the honest median, plus the sponsor's refund: within the escrow
    # (every committer reveals here, so no bond is forfeited into the budget)
    assert first["payout"] + first["median"] + first["sponsor"] * ESCROW <= ESCROW
    assert first["payout"] > 0 and first["median"] > 0
