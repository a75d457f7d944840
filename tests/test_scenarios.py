"""The marketplace scenario, once, on every transport and with every kind of reward.

A sponsor escrows a reward (ether, or an ERC-20 through its portal) for a two-round job on
scikit-learn's breast-cancer data; three clients train on private partitions and a fourth
commits the global model unchanged (a copier). The same code (``demo.marketplace.Market``
on the client SDK) plays it on the DApp in this process (a simulated chain) and on the real
devnet (anvil, Rollups 2.2.0, the host-mode node), where every payout voucher is executed by
the Application contract and balances are read back from the chain.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from deml_console.model_zoo import get_weights, with_weights
from deml_console.sdk import Client, Outcome, Transport, notice, vouchers
from deml_protocol import queries
from deml_protocol.cid import compute_cid
from deml_protocol.errors import InsufficientBalance, NoSuchJob, NotFound
from demo.marketplace import WINDOW, Market
from demo.node_client import Client as DevnetClient
from demo.node_client import node_transport
from devnet.contracts import balance_of
from devnet.in_process import InProcessMachine
from devnet.stack import Devnet, DevnetConfig
from tests.machine_support import TOKEN, Driver

ETHER = None  # Market.post's token for an ether reward


@dataclass
class Stage:
    """Where a scenario plays: a transport, its accounts, and how rewards reach them."""

    net: Transport
    sponsor: str
    clients: list[str]
    token: str | None  # None: ether
    devnet: DevnetClient | None = None  # the real chain, to execute vouchers on
    closes: list[Outcome] = field(default_factory=list)

    def received(self) -> dict[str, int]:
        """What each account got from the job's vouchers, on the base layer where there is
        one (executed there, measured as balance changes), else as the vouchers say."""
        everyone = [self.sponsor, *self.clients]
        paid = [v for closed in self.closes for v in vouchers(closed)]
        if self.devnet is None:
            got = dict.fromkeys(everyone, 0)
            for voucher in paid:
                transfer = voucher.erc20_transfer()
                recipient, amount = transfer or (voucher.destination, voucher.value)
                got[recipient] += amount
            return got
        self.devnet.close_epoch()
        before = {who: self.balance(who) for who in everyone}
        executor = self.devnet.accounts[0]  # pays the gas; never a recipient here
        for voucher in paid:
            assert self.net.execute_voucher(voucher.index, executor)  # type: ignore[attr-defined]
        assert not self.net.execute_voucher(paid[0].index, executor)  # type: ignore[attr-defined]
        return {who: self.balance(who) - before[who] for who in everyone}

    def balance(self, who: str) -> int:
        assert self.devnet is not None
        if self.token is None:
            return self.devnet.chain.get_balance(who)
        return balance_of(self.devnet.chain, self.token, who)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevnetClient]:
    state = tmp_path_factory.mktemp("scenarios")
    with Devnet(DevnetConfig(state_dir=state, port=0, epoch_length=20)) as stack:
        yield DevnetClient(stack)


@pytest.fixture(params=["in-process", pytest.param("devnet", marks=pytest.mark.devnet)])
def place(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["ether", "erc20"])
def stage(request: pytest.FixtureRequest, place: str) -> Iterator[Stage]:
    asset = str(request.param)
    if place == "in-process":
        with InProcessMachine() as machine:
            accounts = ["0x" + f"{n:02x}" * 20 for n in (0xA1, 0xB0, 0xC0, 0xD0, 0xE0)]
            yield Stage(
                Driver(machine), accounts[0], accounts[1:], TOKEN if asset == "erc20" else ETHER
            )
        return
    devnet: DevnetClient = request.getfixturevalue("devnet")
    sponsor, *clients = [a.lower() for a in devnet.accounts[5:10]]
    token = str(devnet.info["reward_token"]).lower() if asset == "erc20" else ETHER
    yield Stage(node_transport(devnet.devnet), sponsor, clients, token, devnet=devnet)


def test_honest_clients_are_paid_and_the_copier_is_not(stage: Stage) -> None:
    market = Market(stage.net, sponsor=stage.sponsor, clients=stage.clients)
    copier = stage.clients[3]
    escrow = 3 * 10**18 + 7  # odd on purpose: the split's remainder must not be lost
    market.post(escrow, token=stage.token, metric="log_loss")
    sponsor = market.client(stage.sponsor)

    global_model, baselines = market.initial_model, []
    for round_index in (0, 1):
        models = [market.train(i, global_model) for i in range(3)] + [global_model]
        for who, model in zip(stage.clients, models, strict=True):
            market.commit(who, model, round_index)
        stage.net.send(stage.sponsor, b"\0\0\0\0", advance_time=WINDOW)  # block time passes
        market.reveal_holdout(round_index)
        for who, model in zip(stage.clients, models, strict=True):
            market.reveal(who, model, round_index)
        stage.net.send(stage.sponsor, b"\0\0\0\0", advance_time=2 * WINDOW)
        closed = market.client(copier).close_round(market.job_id, round_index)  # anyone may
        result = notice(closed, "RoundClosed").fields
        assert list(result["accepted"]) == [True, True, True, False]
        assert [p.lower() for p in result["paid"]] == stage.clients[:3]
        baselines.append(result["baseline"])
        stage.closes.append(closed)
        global_model = _fedavg_by_the_client(result["newModelCid"], models[:3])
        assert sponsor.fetch_blob(result["newModelCid"]) == global_model
        latest = sponsor.ask(queries.LATEST_MODEL, job_id=market.job_id)
        assert latest["cid"] == result["newModelCid"]
    assert baselines[1] > baselines[0]  # the aggregated model scores better on new data

    received = stage.received()
    assert received[copier] == 0
    assert all(received[c] > 0 for c in stage.clients[:3])
    assert sum(received.values()) == escrow  # payouts + refund == escrow, to the base unit
    job = sponsor.job(market.job_id)
    assert job["status"] == "finished" and job["current_round"] == job["rounds"] == 2
    assert [r["closed"] for r in job["opened_rounds"]] == [True, True]
    assert int(job["paid"]) + int(job["refunded"]) == escrow
    with pytest.raises(NotFound):  # a typed error, decoded from the rejection report
        sponsor.round(market.job_id, 2)
    if isinstance(stage.net, Driver):  # the DApp's state is at hand in this process
        _assert_archived(stage.net, market.job_id)


def _assert_archived(net: Driver, job_id: int) -> None:
    """What only open rounds need has left the state: the copy-check sketches at each close,
    the finished job's revealed weights at its last (only its global models' fingerprints)."""
    state = net.machine.dapp.state  # type: ignore[attr-defined]
    job_subs = [s for (j, _, _), s in state.submissions.items() if j == job_id]
    assert len(job_subs) == 8 and all(s.sketch == b"" for s in job_subs)
    owners = {owner for (j, _), owner in state.fingerprints.items() if j == job_id}
    assert owners == {"global"}


@pytest.mark.devnet
def test_the_sdk_on_the_node_types_rejections_and_decodes_replies(devnet: DevnetClient) -> None:
    """The SDK's NodeTransport alone: signed transactions, the node's JSON-RPC and inspect."""
    me = Client(node_transport(devnet.devnet), devnet.accounts[4])
    with pytest.raises(InsufficientBalance):  # rejected on the node, typed by its code
        me.withdraw_ether(1)
    with pytest.raises(NoSuchJob):  # a rejected inspect
        me.job(10**6)
    cid = me.upload(b"stored through the InputBox")
    assert me.ask(queries.BLOB, cid=cid)["status"] == "stored"
    assert me.fetch_blob(cid) == b"stored through the InputBox"
    deposited = me.deposit_ether(5)
    assert deposited.status == "accepted" and me.balances()["ether"] == "5"
    assert me.withdraw_ether(5).status == "accepted"


def _fedavg_by_the_client(cid: str, models: list[bytes]) -> bytes:
    """FedAvg recomputed by a client (equal weights, float64 mean, cast back): its CID must
    be the DApp's new global model's."""
    weights = [get_weights(m) for m in models]
    mean = {
        name: np.mean([w[name].astype(np.float64) for w in weights], axis=0) for name in weights[0]
    }
    rebuilt = with_weights(models[0], mean)
    assert compute_cid(rebuilt) == cid, "the DApp's aggregate differs from a client's FedAvg"
    return rebuilt
