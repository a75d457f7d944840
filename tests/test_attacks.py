"""Every attack of the incentives issue, played through the DApp's real input path (the
strategy simulator's jobs, ``bench/incentives.py``, on the DApp in process): who is paid
what, and what happens to bonds and the global model. docs/incentives.md §3 is the table.

One job each: breast cancer, IID clients, seed 1, two rounds, escrow 10^9 wei, bond 10^6;
three honest clients (small, median, large) and the attacker. Every sum below is exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from bench.incentives import (
    ATTACKERS,
    BOND,
    ESCROW,
    HONEST,
    MEDIAN,
    ROUNDS,
    SPONSOR_ALIAS,
    Task,
    World,
    load_task,
    play_job,
)
from deml_console import sdk
from deml_console.datasets import shard_bytes
from deml_console.sdk import Client
from deml_protocol import inputs
from deml_protocol.cid import compute_cid
from deml_protocol.commitments import holdout_commitment
from demo.marketplace import WINDOW, Market, salt_for
from devnet.in_process import InProcessMachine
from tests.machine_support import ALICE, BOB, Driver, error_of

ATTACKER = ATTACKERS[0]
CAROL, ERIN = "0x" + "c0" * 20, "0x" + "e0" * 20
DEPOSIT = 10 * BOND  # each address's in-app ether before the job


@pytest.fixture(scope="module")
def task() -> Iterator[Task]:
    yield load_task("breast_cancer")


@pytest.fixture(scope="module")
def reference(task: Task) -> World:
    return play_job(task, "iid", 1, "honest (median, reference)")


def play(task: Task, name: str) -> World:
    world = play_job(task, "iid", 1, name)
    forfeited = sum(DEPOSIT - world.balances[who] for who in world.balances)
    # every unit of the escrow and of the forfeited bonds is paid or refunded, no more
    assert sum(world.paid.values()) + world.refunded == ESCROW + forfeited
    return world


def honest_pay(world: World) -> list[int]:
    return [world.paid.get(who, 0) for who in HONEST]


def test_honest_reference_pays_the_three_clients(reference: World) -> None:
    assert all(pay > ESCROW // 4 for pay in honest_pay(reference))
    assert reference.refunded <= ROUNDS  # division remainders only
    assert all(reference.balances[who] == DEPOSIT for who in HONEST)  # bonds came back


@pytest.mark.parametrize(
    "name",
    [
        "copier (the global model)",
        "near-copier (global, 1 ULP)",
        "copier of a peer (1 ULP of median's)",
        "front-runner (commits a seen upload)",
    ],
)
def test_copies_are_not_paid_and_their_bonds_go_to_the_honest(
    task: Task, reference: World, name: str
) -> None:
    world = play(task, name)
    assert ATTACKER not in world.paid
    assert world.balances[ATTACKER] == DEPOSIT - ROUNDS * BOND  # a bond forfeited per round
    assert sum(honest_pay(world)) == sum(honest_pay(reference)) + ROUNDS * BOND
    assert world.final == reference.final  # never averaged


def test_free_rider_and_poisoner_are_not_paid_or_averaged(task: Task, reference: World) -> None:
    for name in ("free-rider (global + noise)", "poisoner (flipped labels)"):
        world = play(task, name)
        assert ATTACKER not in world.paid, name
        assert world.balances[ATTACKER] == DEPOSIT, name  # an original: its bond comes back
        assert honest_pay(world) == honest_pay(reference), name
        assert world.final == reference.final, name


def test_sybils_of_one_model_earn_one_share(task: Task) -> None:
    one = play(task, "newcomer (honest, own 20% data)")
    sybils = play(task, "3 sybils (1-ULP copies of own work)")
    assert [sybils.paid.get(a, 0) > 0 for a in ATTACKERS[:3]] == [True, False, False]
    assert [sybils.balances[a] for a in ATTACKERS[:3]] == [DEPOSIT] + 2 * [DEPOSIT - 2 * BOND]
    # the first sybil is paid as the same work from one address, with the others' bonds
    # in the budget: within 1% of the newcomer's pay (4 forfeited bonds are 0.4% of it)
    assert one.paid[ATTACKER] <= sybils.paid[ATTACKER] <= one.paid[ATTACKER] * 1.01
    assert sybils.final == one.final


def test_lazy_and_scaled_updates_earn_no_more_than_the_full_work(task: Task) -> None:
    full = play(task, "newcomer (honest, own 20% data)").paid[ATTACKER]
    assert play(task, "lazy (one step)").paid[ATTACKER] < full
    assert play(task, "scaled update (x5)").paid[ATTACKER] <= full


def test_round_filler_pays_a_bond_a_slot_to_the_one_honest_client_that_got_in(
    task: Task,
) -> None:
    world = play(task, "round filler (copies, first)")
    fillers = ATTACKERS[:4]
    assert not any(who in world.paid for who in fillers)
    assert all(world.balances[who] == DEPOSIT - ROUNDS * BOND for who in fillers)
    # 5 slots: 4 copies and the first honest client, who takes the escrow and 8 bonds
    assert world.paid == {HONEST[0]: ESCROW + 4 * ROUNDS * BOND}
    assert world.refunded == 0


def test_withheld_shards_pay_every_original_equally_and_refund_nothing(task: Task) -> None:
    world = play(task, "sponsor: withholds the shard")
    assert honest_pay(world) == [ESCROW // 3] * 3
    assert world.refunded == ESCROW - 3 * (ESCROW // 3)  # the division's remainder
    # the global model never moved, so round 1 retrains the same bytes: that is no copy
    assert all(world.balances[who] == DEPOSIT for who in HONEST)


def test_perfect_baseline_shards_do_not_pay_the_sponsor_back(task: Task) -> None:
    world = play(task, "sponsor: perfect-baseline shards")
    assert world.refunded <= ROUNDS  # division remainders only (was most of the escrow)
    assert all(pay > ESCROW // 4 for pay in honest_pay(world))


def test_self_dealing_still_recovers_most_of_the_escrow(task: Task) -> None:
    """Open (docs/incentives.md §4): a model fitted to the shard wins most rounds. This
    records the outcome so that a remedy shows up here."""
    world = play(task, "sponsor: self-dealing (fits the shard)")
    assert world.paid[SPONSOR_ALIAS] > ESCROW // 2
    assert world.paid[SPONSOR_ALIAS] > 5 * world.paid[MEDIAN]


def test_an_invalid_shard_is_refused_and_the_sponsor_gets_nothing_back() -> None:
    """The sponsor commits a shard the model cannot score (a label past its two classes):
    its reveal is refused, so the round has no shard and every original model shares it."""
    with InProcessMachine() as machine:
        net = Driver(machine)
        market = Market(net, sponsor=ALICE, clients=[BOB, CAROL])
        X, _ = market.federation.holdouts[0]
        bad = shard_bytes(X, np.full(len(X), 2))
        salt = salt_for("bad shard")
        market.post(1000, holdoutCommitments=[holdout_commitment(compute_cid(bad), salt)])
        trained = [market.train(i, market.initial_model) for i in range(2)]
        for client, model in zip(market.clients, trained, strict=True):
            market.commit(client, model, 0)
        market.net.send(ERIN, b"\0\0\0\0", advance_time=WINDOW)
        sponsor = Client(market.net, ALICE)
        sponsor.upload(bad)
        refused = net.send(ALICE, inputs.REVEAL_HOLDOUT.encode(1, 0, compute_cid(bad), salt))
        assert error_of(refused) == "shard_model_mismatch"
        market.net.send(ERIN, b"\0\0\0\0", advance_time=WINDOW)  # the holdout window ends
        for client, model in zip(market.clients, trained, strict=True):
            assert market.reveal(client, model, 0).status == "accepted"
        market.net.send(ERIN, b"\0\0\0\0", advance_time=WINDOW)
        closed = market.net.send(ERIN, inputs.CLOSE_ROUND.encode(1, 0))
        fields = sdk.notice(closed, "RoundClosed").fields
        assert fields["holdoutRevealed"] is False
        assert [c.lower() for c in fields["paid"]] == [BOB, CAROL]
        assert list(fields["amounts"]) == [500, 500] and fields["refund"] == 0
