"""Jobs and rounds on the real DApp process behind the guest API server (fast, no chain).

The whole marketplace scenario, on every transport, is ``test_scenarios.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from deml_console import sdk
from deml_console.datasets import shard_bytes
from deml_console.model_zoo import get_weights, logistic_regression, mlp, with_weights
from deml_console.sdk import Client, Outcome
from deml_protocol import inputs, queries
from deml_protocol.cid import compute_cid
from deml_protocol.commitments import submission_commitment
from demo.marketplace import WINDOW, salt_for
from demo.marketplace import Market as _Market
from devnet.guest_server import Result
from devnet.host_machine import HostMachine
from devnet.in_process import InProcessMachine
from tests.machine_support import ALICE, BOB, Driver, error_of

CAROL, DAVE, ERIN = "0x" + "c0" * 20, "0x" + "d0" * 20, "0x" + "e0" * 20
ETH = 10**18


@dataclass
class Market(_Market):
    """The demo's market on a test ``Driver`` (which also records and replays inputs)."""

    net: Driver


@pytest.fixture
def market() -> Iterator[Market]:
    with InProcessMachine() as machine:
        yield Market(Driver(machine), sponsor=ALICE, clients=[BOB, CAROL, DAVE, ERIN])


def vouchers(result: Outcome) -> list[tuple[str, int]]:
    return [(v.destination, v.value) for v in sdk.vouchers(result)]


def notice(result: Outcome, name: str) -> dict[str, Any]:
    return sdk.notice(result, name).fields


def wait(market: Market, seconds: int) -> None:
    """Let block time pass (an input that changes nothing: an unknown call, rejected)."""
    market.net.send(ERIN, b"\x00\x00\x00\x00", advance_time=seconds)


def play_round(market: Market, round_index: int, models: list[bytes]) -> Result:
    for client, model in zip(market.clients, models, strict=True):
        assert market.commit(client, model, round_index).status == "accepted"
    wait(market, WINDOW)
    assert market.reveal_holdout(round_index).status == "accepted"
    for client, model in zip(market.clients, models, strict=True):
        revealed = market.reveal(client, model, round_index)
        assert revealed.status == "accepted", revealed.reports
    wait(market, 2 * WINDOW)
    closed = market.net.send(ERIN, inputs.CLOSE_ROUND.encode(market.job_id, round_index))
    assert closed.status == "accepted", closed.reports
    return closed


def _stored_model(market: _Market, cid: str, models: list[bytes]) -> bytes:
    """FedAvg recomputed by the client (equal weights, float64 mean, cast back)."""
    from deml_console.model_zoo import get_weights

    weights = [get_weights(m) for m in models]
    mean = {
        name: np.mean([w[name].astype(np.float64) for w in weights], axis=0) for name in weights[0]
    }
    rebuilt = with_weights(models[0], mean)
    assert compute_cid(rebuilt) == cid, "the DApp's aggregate differs from a client's FedAvg"
    return rebuilt


@pytest.fixture
def open_round(market: Market) -> Market:
    """A job with commit bond 10, BOB committed in round 0, still inside the commit window."""
    net = market.net
    net.deposit_ether(BOB, ETH)
    market.post(ETH, commitBond=10)
    market.bob_model = market.train(0, market.initial_model)  # type: ignore[attr-defined]
    assert market.commit(BOB, market.bob_model, 0).status == "accepted"  # type: ignore[attr-defined]
    return market


def assert_rejected(
    market: Market, sender: str, payload: bytes, code: str, *, advance_time: int = 12
) -> None:
    net = market.net
    before = net.digest()
    result = net.send(sender, payload, advance_time=advance_time)
    assert error_of(result) == code
    assert net.digest() == before


def test_commit_and_reveal_rules(open_round: Market) -> None:
    m, job = open_round, open_round.job_id
    model = m.bob_model  # type: ignore[attr-defined]
    cid = Client(m.net, BOB).upload(model)
    reveal = inputs.REVEAL_SUBMISSION.encode(job, 0, cid, salt_for(BOB))
    commit = inputs.COMMIT_SUBMISSION.encode(job, 0, b"\x01" * 32)
    assert_rejected(m, BOB, commit, "already_committed")
    assert_rejected(m, BOB, reveal, "window_not_open")  # still in the commit window
    assert_rejected(
        m,
        ALICE,
        inputs.REVEAL_HOLDOUT.encode(job, 0, m.holdout(0)[1], salt_for("holdout0")),
        "window_not_open",
    )
    assert_rejected(m, BOB, inputs.CLOSE_ROUND.encode(job, 0), "round_not_over")
    wait(m, WINDOW)
    assert_rejected(
        m, CAROL, inputs.COMMIT_SUBMISSION.encode(job, 0, b"\x02" * 32), "window_closed"
    )
    assert_rejected(m, BOB, reveal, "holdout_pending")
    data, data_cid = m.holdout(0)
    Client(m.net, ALICE).upload(data)
    assert_rejected(
        m, BOB, inputs.REVEAL_HOLDOUT.encode(job, 0, data_cid, salt_for("holdout0")), "not_sponsor"
    )
    wrong = shard_bytes(*m.federation.holdouts[1])
    Client(m.net, ALICE).upload(wrong)
    assert_rejected(
        m,
        ALICE,
        inputs.REVEAL_HOLDOUT.encode(job, 0, compute_cid(wrong), salt_for("holdout0")),
        "holdout_mismatch",
    )
    assert m.reveal_holdout(0).status == "accepted"
    assert_rejected(m, CAROL, reveal, "no_commitment")
    assert_rejected(
        m,
        BOB,
        inputs.REVEAL_SUBMISSION.encode(job, 0, cid, salt_for("wrong")),
        "commitment_mismatch",
    )
    assert m.net.query(f"balances/{BOB}")["ether"] == str(ETH - 10)  # the bond is held
    assert m.net.send(BOB, reveal).status == "accepted"
    assert_rejected(m, BOB, reveal, "already_revealed")
    wait(m, 2 * WINDOW)
    assert_rejected(m, BOB, reveal, "window_closed")
    assert m.net.query(f"balances/{BOB}")["ether"] == str(ETH - 10)  # held until the close
    assert m.net.send(CAROL, inputs.CLOSE_ROUND.encode(job, 0)).status == "accepted"
    assert m.net.query(f"balances/{BOB}")["ether"] == str(ETH)  # returned: an original
    assert_rejected(m, CAROL, inputs.CLOSE_ROUND.encode(job, 0), "round_closed")
    assert_rejected(m, CAROL, inputs.CLOSE_ROUND.encode(job, 2), "round_not_current")
    assert m.net.query(f"jobs/{job}/rounds/\u00b2")["error"] == "bad_argument"
    assert m.net.query("jobs/\u00b2")["error"] == "bad_argument"


def _reveal_bad_model(m: Market, bad: bytes, code: str) -> None:
    job = m.job_id
    m.net.deposit_ether(CAROL, ETH)
    cid = Client(m.net, CAROL).upload(bad)
    commitment = submission_commitment(cid, salt_for(CAROL), CAROL, job, 0)
    assert m.net.send(CAROL, inputs.COMMIT_SUBMISSION.encode(job, 0, commitment)).status == (
        "accepted"
    )
    wait(m, WINDOW)
    m.reveal_holdout(0)
    assert_rejected(m, CAROL, inputs.REVEAL_SUBMISSION.encode(job, 0, cid, salt_for(CAROL)), code)


@pytest.mark.parametrize(
    ("bad_model", "code"),
    [
        (lambda: mlp([30, 4, 2], seed=1), "graph_mismatch"),
        (lambda: logistic_regression(np.full(30, np.nan)), "non_finite_weights"),
        (lambda: _extra_node(), "graph_mismatch"),
        (lambda: _float64_weights(), "initializer_mismatch"),
    ],
    ids=["other-graph", "nan-weights", "extra-node", "wrong-dtype"],
)
def test_bad_models_are_rejected_at_reveal(open_round: Market, bad_model: Any, code: str) -> None:
    _reveal_bad_model(open_round, bad_model(), code)


def _extra_node() -> bytes:
    import onnx
    from onnx import helper

    model = onnx.load_from_string(logistic_regression(np.zeros(30)))
    model.graph.node.append(helper.make_node("Identity", ["probabilities"], ["copy"]))
    model.graph.output.append(
        helper.make_tensor_value_info("copy", onnx.TensorProto.FLOAT, ["N", 1])
    )
    return bytes(model.SerializeToString(deterministic=True))


def _float64_weights() -> bytes:
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(logistic_regression(np.zeros(30)))
    for i, tensor in enumerate(model.graph.initializer):
        array = numpy_helper.to_array(tensor).astype(np.float64)
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, tensor.name))
    return bytes(model.SerializeToString(deterministic=True))


def test_unrevealed_shard_pays_passing_models_equally(market: Market) -> None:
    escrow = 1000
    market.post(escrow, commitBond=0)
    models = [market.train(i, market.initial_model) for i in range(3)] + [market.initial_model]
    for client, model in zip(market.clients, models, strict=True):
        market.commit(client, model, 0)
    wait(market, 2 * WINDOW)  # the sponsor lets the holdout window pass
    for client, model in zip(
        market.clients[:2] + market.clients[3:], models[:2] + models[3:], strict=True
    ):
        assert market.reveal(client, model, 0).status == "accepted"
    wait(market, WINDOW)
    closed = market.net.send(ERIN, inputs.CLOSE_ROUND.encode(market.job_id, 0))
    result = notice(closed, "RoundClosed")
    assert result["holdoutRevealed"] is False
    assert [c.lower() for c in result["paid"]] == [BOB, CAROL]  # DAVE never revealed
    assert list(result["amounts"]) == [250, 250]  # round budget 500, equal split
    assert vouchers(closed) == [(BOB, 250), (CAROL, 250)]


def test_forfeited_bonds_join_the_round_budget(market: Market) -> None:
    for client in market.clients:
        market.net.deposit_ether(client, 100)
    market.post(1000, commitBond=40)
    trained = market.train(0, market.initial_model)
    market.commit(BOB, trained, 0)
    market.commit(CAROL, market.train(1, market.initial_model), 0)  # never revealed
    wait(market, WINDOW)
    market.reveal_holdout(0)
    market.reveal(BOB, trained, 0)
    wait(market, 2 * WINDOW)
    closed = market.net.send(ERIN, inputs.CLOSE_ROUND.encode(market.job_id, 0))
    assert vouchers(closed) == [(BOB, 500 + 40)]
    assert market.net.query(f"balances/{CAROL}")["ether"] == "60"


def test_job_spec_is_checked_at_posting(market: Market) -> None:
    net = market.net
    Client(net, ALICE).upload(market.initial_model)
    spec = market.job_spec()
    cases: list[tuple[dict[str, Any], str]] = [
        (dict(metric="f1"), "unknown_metric"),
        (dict(holdoutCommitments=[]), "invalid_job_spec"),
        (dict(commitSeconds=0), "invalid_job_spec"),
        (dict(holdoutCommitments=[b"\x01" * 32] * 2), "invalid_job_spec"),
        (dict(modelCid=compute_cid(b"not stored")), "blob_not_found"),
        (
            dict(modelCid=Client(net, ALICE).upload(mlp([30, 256, 256, 2])), holdoutRows=100_000),
            "work_budget_exceeded",
        ),
        (dict(modelCid=Client(net, ALICE).upload(b"not a model")), "model_unparseable"),
    ]
    for overrides, code in cases:
        result = net.deposit_ether(ALICE, ETH, inputs.CREATE_JOB.encode(**(spec | overrides)))
        assert code in result.reports[-1].decode(), (overrides, result.reports)
    assert net.query("jobs") == []
    assert net.query(f"balances/{ALICE}")["ether"] == str(len(cases) * ETH)  # money kept
    assert error_of(net.send(ALICE, inputs.CREATE_JOB.encode(**spec))) == "deposit_required"
    from_balance = inputs.CREATE_JOB_FROM_BALANCE.encode("0x" + "00" * 20, 2 * ETH, **spec)
    assert net.send(ALICE, from_balance).status == "accepted"
    assert net.query("jobs")[0]["escrow"] == str(2 * ETH)
    too_much = inputs.CREATE_JOB_FROM_BALANCE.encode("0x" + "00" * 20, 100 * ETH, **spec)
    assert error_of(net.send(ALICE, too_much)) == "insufficient_balance"


def test_evaluate_any_model_on_any_shard(market: Market) -> None:
    net = market.net
    data, data_cid = market.holdout(0)
    Client(net, BOB).upload(data)
    model = market.train(0, market.initial_model)
    model_cid = Client(net, BOB).upload(model)
    result = net.send(CAROL, inputs.EVALUATE.encode(model_cid, data_cid, "accuracy"))
    fields = notice(result, "Evaluation")
    assert fields["modelCid"] == model_cid and fields["rows"] == 80
    assert 900_000 < fields["score"] <= 1_000_000


def test_replay_gives_identical_outputs(market: Market) -> None:
    market.post(ETH, metric="roc_auc")
    play_round(
        market,
        0,
        [market.train(i, market.initial_model) for i in range(3)] + [market.initial_model],
    )
    original = market.net
    with HostMachine() as machine:
        replay = Driver(machine)
        results = [machine.advance(meta, payload) for meta, payload in original.log]
        replay_digest = replay.digest()
    assert [(r.status, r.outputs, r.reports) for r in results] == [
        (r.status, r.outputs, r.reports) for r in original.results
    ]
    assert replay_digest == original.digest()


def nudged(model: bytes, ulps: int) -> bytes:
    """The same model with one weight moved by ``ulps`` float32 steps: a near-copy."""
    weights = get_weights(model)
    coef = weights["W0"].astype(np.float32)
    for _ in range(ulps):
        coef[0, 0] = np.nextafter(coef[0, 0], np.float32(np.inf))
    return with_weights(model, {"W0": coef, "B0": weights["B0"]})


def test_the_same_weights_are_paid_once(market: Market) -> None:
    """A front-runner's copy, revealed first, and near-copies (1 and 2 ULP off) committed
    after the author are copies: commit order decides (``dapp/copies.py``)."""
    market.post(1000)
    trained = market.train(0, market.initial_model)
    play = [(BOB, trained), (CAROL, trained), (DAVE, market.train(1, market.initial_model))]
    play += [(ERIN, nudged(trained, 1)), (ALICE, nudged(trained, 2))]
    for client, model in play:
        market.commit(client, model, 0)
    wait(market, WINDOW)
    market.reveal_holdout(0)
    for client, model in [play[1], *play[2:], play[0]]:  # the copier reveals before BOB
        assert market.reveal(client, model, 0).status == "accepted"
    wait(market, 2 * WINDOW)
    closed = market.net.send(ERIN, inputs.CLOSE_ROUND.encode(market.job_id, 0))
    assert [c.lower() for c in notice(closed, "RoundClosed")["paid"]] == [DAVE, BOB]
    view = market.net.query(f"jobs/{market.job_id}/rounds/0")["submissions"]
    assert [s["is_copy"] for s in view] == [False, True, False, True, True]
    market.commit(ERIN, trained, 1)  # BOB's round-0 model again, in round 1
    wait(market, WINDOW)
    market.reveal_holdout(1)
    market.reveal(ERIN, trained, 1)
    view = market.net.query(f"jobs/{market.job_id}/rounds/1")["submissions"]
    assert view[0]["is_copy"] is True


def test_round_limits_leaderboard_and_negative_zero_copies(market: Market) -> None:
    market.post(1000, maxSubmissions=3)
    job = market.job_id
    trained = market.train(0, market.initial_model)
    negative_zero = with_weights(
        market.initial_model, {"W0": np.full((30, 1), -0.0), "B0": np.array([-0.0])}
    )
    play = [(BOB, trained), (CAROL, market.train(1, market.initial_model)), (DAVE, negative_zero)]
    for client, model in play:
        assert market.commit(client, model, 0).status == "accepted"
    assert_rejected(
        market, ERIN, inputs.COMMIT_SUBMISSION.encode(job, 0, b"\x05" * 32), "round_full"
    )
    wait(market, WINDOW)
    assert market.reveal_holdout(0).status == "accepted"
    data, data_cid = market.holdout(0)
    assert_rejected(
        market,
        ALICE,
        inputs.REVEAL_HOLDOUT.encode(job, 0, data_cid, salt_for("holdout0")),
        "holdout_already_revealed",
    )
    for client, model in play:
        market.reveal(client, model, 0)
    view = market.net.query(f"jobs/{job}/rounds/0")["submissions"]
    assert [s["is_copy"] for s in view] == [False, False, True]  # -0.0 is the initial 0.0
    board = market.net.query(f"jobs/{job}/leaderboard")
    scores = {s["client"]: s["score"] for s in view}
    assert [row["client"] for row in board] == sorted(scores, key=lambda c: -scores[c])
    assert [row["rank"] for row in board] == [1, 2, 3]


def test_short_portal_payload_is_a_malformed_deposit(market: Market) -> None:
    from deml_protocol import addresses

    before = market.net.digest()
    result = market.net.send(addresses.ETHER_PORTAL, b"\x01" * 51)
    assert error_of(result) == "malformed_deposit"
    assert market.net.digest() == before


def test_resubmitting_the_new_global_model_is_a_copy(market: Market) -> None:
    market.post(1000)
    models = [market.train(i, market.initial_model) for i in range(2)]
    for client, model in zip((BOB, CAROL), models, strict=True):
        market.commit(client, model, 0)
    wait(market, WINDOW)
    market.reveal_holdout(0)
    for client, model in zip((BOB, CAROL), models, strict=True):
        market.reveal(client, model, 0)
    wait(market, 2 * WINDOW)
    closed = market.net.send(ERIN, inputs.CLOSE_ROUND.encode(market.job_id, 0))
    new_global = _stored_model(market, notice(closed, "RoundClosed")["newModelCid"], models)
    market.commit(DAVE, new_global, 1)
    wait(market, 2 * WINDOW)  # no shard this round: the no-shard rule pays passing models
    market.reveal(DAVE, new_global, 1)
    wait(market, WINDOW)
    closed = market.net.send(ERIN, inputs.CLOSE_ROUND.encode(market.job_id, 1))
    result = notice(closed, "RoundClosed")
    # a copy is never paid: the last round's budget goes to round 0's winners instead
    assert [c.lower() for c in result["paid"]] == [BOB, CAROL]
    assert result["refund"] <= 1


def test_every_query_decodes_from_a_real_reply(market: Market) -> None:
    """Each declared reply shape (``Query.decode``) fits what the DApp really answers."""
    market.post(1000)
    models = [market.train(i, market.initial_model) for i in range(3)]
    play_round(market, 0, [*models, market.initial_model])
    net, job = market.net, market.job_id
    model_cid = net.ask(queries.LATEST_MODEL, job_id=job)["cid"]
    partial = b"partial upload" * 10
    net.send(ALICE, inputs.BEGIN_BLOB.encode(compute_cid(partial), len(partial)))
    replies: list[Any] = [
        net.ask(queries.BALANCES, address=BOB),
        net.ask(queries.BLOB, cid=model_cid),
        net.ask(queries.BLOB, cid=compute_cid(partial)),
        net.ask(queries.BLOB, cid=compute_cid(b"never sent")),
        net.ask(queries.BLOB_DATA, cid=model_cid, offset=0),
        net.ask(queries.UPLOADS, uploader=ALICE),
        net.ask(queries.JOBS),
        net.ask(queries.JOB, job_id=job),
        net.ask(queries.ROUND, job_id=job, round=0),
        net.ask(queries.LEADERBOARD, job_id=job),
        net.ask(queries.STATE_DIGEST),
    ]
    assert [r["status"] for r in replies[1:4]] == ["stored", "uploading", "absent"]
    assert replies[5][0]["received"] == 0 and len(replies[9]) > 0
    assert replies[8]["closed"] and replies[7]["opened_rounds"][0] == replies[8]
