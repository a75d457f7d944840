"""The policies a job chooses (``dapp/policies.py``): payout policies split integers
exactly, robust aggregation rules give the same bytes whatever the models' order, and a job
names them at posting (checked, shown by inspect) and is settled by them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dapp import aggregate_median, aggregate_trimmed_mean, policies, work_budget
from dapp.fedavg import fedavg
from dapp.onnx_checks import parse_model
from dapp.records import Amount
from deml_console import sdk
from deml_console.model_zoo import get_weights, logistic_regression, mlp, with_weights
from deml_console.sdk import Client
from deml_protocol import inputs
from deml_protocol.cid import compute_cid
from deml_protocol.errors import InvalidJobSpec, WorkBudgetExceeded
from demo.marketplace import WINDOW
from devnet.in_process import InProcessMachine
from tests.machine_support import ALICE, BOB, Driver, error_of
from tests.test_jobs import Market

CAROL, DAVE, ERIN = "0x" + "c0" * 20, "0x" + "d0" * 20, "0x" + "e0" * 20
ETH = 10**18
BASE = mlp([6, 4, 2], seed=3)


@pytest.fixture
def market() -> Iterator[Market]:
    with InProcessMachine() as machine:
        yield Market(Driver(machine), sponsor=ALICE, clients=[BOB, CAROL, DAVE, ERIN])


def variants(count: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    weights = get_weights(BASE)
    return [
        with_weights(BASE, {k: v + rng.normal(0, 0.1, v.shape) for k, v in weights.items()})
        for _ in range(count)
    ]


# ---- payout policies ---------------------------------------------------------------------
@given(
    budget=st.integers(0, 10**30),
    gains=st.lists(st.integers(1, 10**12), max_size=20),
    name=st.sampled_from(sorted(policies.PAYOUTS)),
)
def test_every_payout_policy_splits_the_whole_budget(
    budget: int, gains: list[int], name: str
) -> None:
    shares, remainder = policies.payout(name).split(Amount(budget), gains)
    assert len(shares) == len(gains) and all(share >= 0 for share in shares)
    assert sum(shares) + remainder == budget
    assert remainder < max(len(gains), 1) or not gains  # at most a unit per share is left


@pytest.mark.parametrize("name", sorted(policies.PAYOUTS))
def test_acceptance_needs_a_gain_of_at_least_min_gain_and_1(name: str) -> None:
    accept = policies.payout(name).accept
    assert accept([-5, 0, 1, 2, 10], min_gain=0) == [False, False, True, True, True]
    assert accept([-5, 0, 1, 2, 10], min_gain=2) == [False, False, False, True, True]


def test_proportional_and_equal_vectors() -> None:
    assert policies.payout("proportional").split(Amount(1001), [1, 2]) == ([333, 667], 1)
    assert policies.payout("equal").split(Amount(1001), [1, 2]) == ([500, 500], 1)


# ---- aggregation rules -------------------------------------------------------------------
def stacked(models: list[bytes]) -> dict[str, npt.NDArray[np.float32]]:
    return {k: np.stack([get_weights(m)[k] for m in models]) for k in get_weights(BASE)}


def aggregate(name: str, models: list[bytes], trim_percent: int = 0) -> bytes:
    rule = policies.aggregation(name)
    parsed = (parse_model(m) for m in models)
    return rule.aggregate(parse_model(BASE), parsed, count=len(models), trim_percent=trim_percent)


@pytest.mark.parametrize("count", [1, 2, 5, 6])
def test_median_is_numpys_median_and_ignores_order(count: int) -> None:
    models = variants(count)
    result = aggregate("median", models)
    expected = {
        k: np.median(v.astype(np.float64), axis=0).astype(np.float32)
        for k, v in stacked(models).items()
    }
    assert result == with_weights(BASE, expected)
    assert aggregate("median", models[::-1]) == result  # same bytes, any order
    if count == 1:
        assert result == fedavg(parse_model(BASE), [parse_model(models[0])])


def test_trimmed_mean_cuts_each_end_and_ignores_order() -> None:
    models = variants(10, seed=1)
    result = aggregate("trimmed_mean", models, trim_percent=20)  # cuts 2 at each end
    for name, stack in stacked(models).items():
        kept = np.sort(stack.astype(np.float64), axis=0)[2:8]
        np.testing.assert_allclose(get_weights(result)[name], kept.mean(axis=0), rtol=1e-6)
    rng = np.random.default_rng(7)
    shuffled = [models[i] for i in rng.permutation(len(models))]
    assert aggregate("trimmed_mean", shuffled, trim_percent=20) == result
    # too few models to cut any: the plain mean
    three = models[:3]
    np.testing.assert_allclose(
        get_weights(aggregate("trimmed_mean", three, trim_percent=20))["W0"],
        stacked(three)["W0"].astype(np.float64).mean(axis=0),
        rtol=1e-6,
    )


def test_robust_rules_resist_one_scaled_update() -> None:
    honest = variants(4, seed=2)
    weights = get_weights(honest[0])
    scaled = with_weights(BASE, {k: 50 * v for k, v in weights.items()})
    models = [*honest, scaled]
    truth = stacked(honest)["W0"].astype(np.float64).mean(axis=0)
    moved = {
        name: np.abs(get_weights(aggregate(name, models, trim))["W0"] - truth).max()
        for name, trim in (("fedavg", 0), ("median", 0), ("trimmed_mean", 20))
    }
    assert moved["median"] < moved["fedavg"] / 10
    assert moved["trimmed_mean"] < moved["fedavg"] / 10


def test_negative_zero_sorts_as_zero() -> None:
    zeros = {k: np.zeros_like(v) for k, v in get_weights(BASE).items()}
    plus = with_weights(BASE, zeros)
    minus = with_weights(BASE, {k: -v for k, v in zeros.items()})
    for name in ("median", "trimmed_mean"):
        trim = 20 if name == "trimmed_mean" else 0
        assert aggregate(name, [minus, plus, minus], trim) == aggregate(name, [plus] * 3, trim)


def test_rules_check_their_parameters() -> None:
    ok = {"max_models": 8, "weight_bytes": 1000}
    aggregate_median.check(trim_percent=0, **ok)
    aggregate_trimmed_mean.check(trim_percent=49, **ok)
    for rule, trim in (("fedavg", 10), ("median", 1), ("trimmed_mean", 0), ("trimmed_mean", 50)):
        with pytest.raises(InvalidJobSpec, match="trimPercent"):
            policies.aggregation(rule).check(trim_percent=trim, **ok)


# ---- at posting and at the close -----------------------------------------------------------
def test_policies_are_checked_at_posting_and_nothing_is_escrowed(market: Market) -> None:
    net = market.net
    Client(net, ALICE).upload(market.initial_model)
    big = Client(net, ALICE).upload(mlp([30, 256, 256, 2]))  # 74k weights x 256 > 64 MiB
    spec = market.job_spec()
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(payout="winner_takes_all"), "unknown_policy"),
        (dict(aggregation="krum"), "unknown_policy"),
        (dict(aggregation="FedAvg"), "unknown_policy"),  # names are exact
        (dict(trimPercent=5), "invalid_job_spec"),
        (dict(aggregation="trimmed_mean", trimPercent=0), "invalid_job_spec"),
        (dict(aggregation="trimmed_mean", trimPercent=50), "invalid_job_spec"),
        (dict(aggregation="median", modelCid=big, maxSubmissions=256), "invalid_job_spec"),
    ]
    for overrides, code in cases:
        result = net.deposit_ether(ALICE, ETH, inputs.CREATE_JOB.encode(**(spec | overrides)))
        assert code in result.reports[-1].decode(), (overrides, result.reports)
    assert net.query("jobs") == []  # nothing is escrowed: the deposits stay credited
    assert net.query(f"balances/{ALICE}")["ether"] == str(len(cases) * ETH)
    before = net.digest()
    call = inputs.CREATE_JOB_FROM_BALANCE.encode("0x" + "00" * 20, ETH, **(spec | cases[0][0]))
    assert error_of(net.send(ALICE, call)) == "unknown_policy"
    assert net.digest() == before  # all or nothing: the balance is not debited
    fine = dict(aggregation="median", modelCid=big, maxSubmissions=64)  # 19 MB of stacks
    assert not net.deposit_ether(ALICE, ETH, inputs.CREATE_JOB.encode(**(spec | fine))).reports


def test_a_close_over_the_work_budget_is_refused_at_posting(market: Market) -> None:
    """A close is one input: comparing a full round's models for copies and aggregating
    them all must fit the work budget (``dapp.work_budget.close_work``), in the units of an
    evaluation, for every rule. Refused at posting, through the real input path."""
    net = market.net
    Client(net, ALICE).upload(market.initial_model)
    mid = Client(net, ALICE).upload(mlp([30, 200, 200, 2]))  # 47,002 weights, 188 KB
    wide = Client(net, ALICE).upload(mlp([30, 300, 300, 2]))  # 100,202 weights, 401 KB
    spec = market.job_spec()
    refused: list[dict[str, Any]] = [
        dict(aggregation="median", modelCid=mid, maxSubmissions=256),  # 48 MB: under the stack
        dict(aggregation="trimmed_mean", trimPercent=10, modelCid=mid, maxSubmissions=256),
        dict(
            aggregation="fedavg", modelCid=wide, maxSubmissions=256
        ),  # one model at a time, yet all read
    ]
    for overrides in refused:
        result = net.deposit_ether(ALICE, ETH, inputs.CREATE_JOB.encode(**(spec | overrides)))
        report = result.reports[-1].decode()
        assert "work_budget_exceeded" in report and "closing a round" in report, overrides
    assert net.query("jobs") == []  # nothing is escrowed
    admitted: list[dict[str, Any]] = [
        dict(aggregation="median", modelCid=mid, maxSubmissions=128),
        dict(aggregation="trimmed_mean", trimPercent=10, modelCid=mid, maxSubmissions=128),
        dict(aggregation="fedavg", modelCid=wide, maxSubmissions=128),
        dict(aggregation="median", maxSubmissions=256),  # the 31-weight model: copies dominate
    ]
    for overrides in admitted:
        result = net.deposit_ether(ALICE, ETH, inputs.CREATE_JOB.encode(**(spec | overrides)))
        assert not result.reports, (overrides, result.reports)
    assert len(net.query("jobs")) == len(admitted)


def test_the_close_work_is_checked_to_the_unit() -> None:
    models, cost = 256, aggregate_median.VALUE_COST
    fixed = work_budget.close_work(models, 0, cost)
    values = (work_budget.WORK_BUDGET - fixed) // ((models + 1) * cost)  # the most admitted
    assert work_budget.close_work(models, values, cost) <= work_budget.WORK_BUDGET
    aggregate_median.check(trim_percent=0, max_models=models, weight_bytes=4 * values)
    with pytest.raises(WorkBudgetExceeded, match="closing a round"):
        aggregate_median.check(trim_percent=0, max_models=models, weight_bytes=4 * values + 4)


def play_round(market: Market, index: int, play: list[tuple[str, bytes]]) -> dict[str, Any]:
    for client, model in play:
        assert market.commit(client, model, index).status == "accepted"
    wait(market, WINDOW)
    assert market.reveal_holdout(index).status == "accepted"
    for client, model in play:
        assert market.reveal(client, model, index).status == "accepted"
    wait(market, 2 * WINDOW)
    closed = market.net.send(ERIN, inputs.CLOSE_ROUND.encode(market.job_id, index))
    assert closed.status == "accepted", closed.reports
    return sdk.notice(closed, "RoundClosed").fields


def wait(market: Market, seconds: int) -> None:
    market.net.send(ERIN, b"\0\0\0\0", advance_time=seconds)  # rejected: only time passes


def predicts_class_0(intercept: float) -> bytes:
    """Worse than the initial model on the demo's shards (it reads p = 0.5 as class 1)."""
    return logistic_regression(np.zeros(30), intercept)


def test_equal_payout_and_median_aggregation_settle_a_round(market: Market) -> None:
    market.post(1000, payout="equal", aggregation="median")
    view = market.net.query(f"jobs/{market.job_id}")
    assert (view["payout"], view["aggregation"], view["trim_percent"]) == ("equal", "median", 0)
    trained = [market.train(i, market.initial_model) for i in range(3)]
    play = [*zip(market.clients[:3], trained, strict=True), (ERIN, market.initial_model)]
    closed = play_round(market, 0, play)
    assert [c.lower() for c in closed["paid"]] == market.clients[:3]  # ERIN copied
    assert list(closed["amounts"]) == [166, 166, 166]  # round 0 of 2 has 500; 2 carried
    median = {
        k: np.median(np.stack([get_weights(m)[k] for m in trained]), axis=0)
        for k in get_weights(trained[0])
    }
    assert closed["newModelCid"] == compute_cid(with_weights(market.initial_model, median))


def test_a_last_round_nobody_wins_pays_the_earlier_winners_not_the_sponsor(
    market: Market,
) -> None:
    market.post(1000, payout="equal")
    trained = [market.train(i, market.initial_model) for i in range(2)]
    first = play_round(market, 0, list(zip((BOB, CAROL), trained, strict=True)))
    assert list(first["amounts"]) == [250, 250]
    last = play_round(market, 1, [(DAVE, predicts_class_0(-10.0))])
    assert list(last["accepted"]) == [False]
    assert [c.lower() for c in last["paid"]] == [BOB, CAROL]  # by what they won: 250 : 250
    assert list(last["amounts"]) == [250, 250] and last["refund"] == 0


def test_a_job_nobody_ever_wins_pays_its_last_originals_not_the_sponsor(market: Market) -> None:
    market.post(1001)
    wait(market, 3 * WINDOW)  # round 0: nobody comes; its budget is carried
    market.net.send(ERIN, inputs.CLOSE_ROUND.encode(market.job_id, 0))
    play = [(who, predicts_class_0(-10.0 - i)) for i, who in enumerate((BOB, CAROL, DAVE))]
    last = play_round(market, 1, play)
    assert list(last["accepted"]) == [False] * 3
    assert list(last["amounts"]) == [333, 333, 333] and last["refund"] == 2


def test_the_leftover_of_a_long_job_pays_at_most_max_submissions_earlier_winners() -> None:
    """Posting prices a close at one voucher per model of a round: a last round nobody wins
    pays at most ``maxSubmissions`` earlier winners (those who won most), not all of them."""
    from deml_console.datasets import breast_cancer_federation
    from deml_console.training import Recipe, train_logistic_regression

    with InProcessMachine() as machine:
        market = Market(
            Driver(machine),
            sponsor=ALICE,
            clients=[BOB, CAROL, DAVE, ERIN],
            federation=breast_cancer_federation(rounds=3, holdout_rows=60),
        )
        market.post(1000, maxSubmissions=1)
        first = play_round(market, 0, [(BOB, market.train(0, market.initial_model))])
        assert [c.lower() for c in first["paid"]] == [BOB]
        # fitted to round 1's shard itself: sure to beat BOB's model there
        X1, y1 = market.federation.holdouts[1]
        fitted = train_logistic_regression(
            _latest_model(market), X1, y1, Recipe(epochs=200, learning_rate=0.5)
        )
        second = play_round(market, 1, [(CAROL, fitted)])
        assert [c.lower() for c in second["paid"]] == [CAROL]
        last = play_round(market, 2, [(DAVE, predicts_class_0(-10.0))])
        assert list(last["accepted"]) == [False]
        won = {BOB: sum(first["amounts"]), CAROL: sum(second["amounts"])}
        most = max(won, key=lambda c: won[c])
        assert [c.lower() for c in last["paid"]] == [most]  # one payee, not two
        job = market.net.query(f"jobs/{market.job_id}")
        assert int(job["paid"]) + int(job["refunded"]) == 1000


def _latest_model(market: Market) -> bytes:
    cid = market.net.query(f"models/{market.job_id}/latest")["cid"]
    return Client(market.net, ERIN).fetch_blob(cid)


def test_an_aggregated_model_is_a_copy_in_later_rounds_even_for_its_author(
    market: Market,
) -> None:
    market.post(1000)
    trained = [market.train(i, market.initial_model) for i in range(2)]
    first = play_round(market, 0, list(zip((BOB, CAROL), trained, strict=True)))
    assert [c.lower() for c in first["paid"]] == [BOB, CAROL]  # both aggregated
    market.commit(BOB, trained[0], 1)  # BOB's paid, aggregated model again
    wait(market, WINDOW)
    market.reveal_holdout(1)
    assert market.reveal(BOB, trained[0], 1).status == "accepted"
    (bob,) = market.net.query(f"jobs/{market.job_id}/rounds/1")["submissions"]
    assert bob["is_copy"] is True  # paid once; no new work


def test_a_model_shown_in_an_earlier_round_stays_its_authors_whoever_commits_first(
    market: Market,
) -> None:
    market.post(1000)
    losing = predicts_class_0(-10.0)  # revealed in round 0, public since; not aggregated
    first = play_round(market, 0, [(BOB, losing)])
    assert list(first["accepted"]) == [False]
    market.commit(CAROL, losing, 1)  # a watcher commits BOB's model first...
    market.commit(BOB, losing, 1)  # ...BOB retrains to the same bytes (no shard this round)
    wait(market, 2 * WINDOW)  # the sponsor never reveals round 1's shard
    assert market.reveal(BOB, losing, 1).status == "accepted"  # BOB reveals first
    assert market.reveal(CAROL, losing, 1).status == "accepted"
    view = market.net.query(f"jobs/{market.job_id}/rounds/1")["submissions"]
    assert {s["client"].lower(): s["is_copy"] for s in view} == {CAROL: True, BOB: False}
    wait(market, WINDOW)
    closed = market.net.send(ERIN, inputs.CLOSE_ROUND.encode(market.job_id, 1))
    result = sdk.notice(closed, "RoundClosed").fields
    assert [c.lower() for c in result["paid"]] == [BOB]
