"""The marketplace end to end on the real stack: an ERC-20 reward escrowed through the
ERC20Portal, 2 rounds on scikit-learn's breast-cancer data, 3 honest clients and a copier,
every payout voucher executed on chain by the Application contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deml_console.sdk import Client as SdkClient
from deml_console.sdk import Outcome, notice, vouchers
from deml_protocol import queries
from deml_protocol.errors import InsufficientBalance, NoSuchJob
from demo.marketplace import WINDOW, Market
from demo.node_client import Client, node_transport
from devnet.contracts import balance_of
from devnet.stack import Devnet, DevnetConfig
from tests.test_jobs import _stored_model

pytestmark = pytest.mark.devnet


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    state = tmp_path_factory.mktemp("market")
    with Devnet(DevnetConfig(state_dir=state, port=0, epoch_length=20)) as stack:
        yield Client(stack)


def test_two_round_job_on_chain(client: Client) -> None:
    token = client.info["reward_token"]
    sponsor, *clients = client.accounts[5:10]
    net = node_transport(client.devnet)
    market = Market(net, sponsor=sponsor, clients=clients)
    escrow = 9_000 * 10**18 + 7
    app_tokens_before = balance_of(client.chain, token, client.app)
    market.post(escrow, token=token, metric="log_loss")
    assert balance_of(client.chain, token, client.app) - app_tokens_before == escrow

    global_model, closes, baselines = market.initial_model, [], []
    for round_index in (0, 1):
        models = [market.train(i, global_model) for i in range(3)] + [global_model]
        for c, model in zip(market.clients, models, strict=True):
            assert market.commit(c, model, round_index).status == "accepted"
        market.net.send(sponsor, b"\0\0\0\0", advance_time=WINDOW)
        assert market.reveal_holdout(round_index).status == "accepted"
        for c, model in zip(market.clients, models, strict=True):
            assert market.reveal(c, model, round_index).status == "accepted"
        market.net.send(sponsor, b"\0\0\0\0", advance_time=2 * WINDOW)
        closed = market.client(clients[0]).close_round(market.job_id, round_index)
        result = notice(closed, "RoundClosed").fields
        assert list(result["accepted"]) == [True, True, True, False]
        baselines.append(result["baseline"])
        closes.append(closed)
        global_model = _stored_model(market, result["newModelCid"], models[:3])
    assert baselines[1] > baselines[0]

    client.close_epoch()
    before = {who: balance_of(client.chain, token, who) for who in [sponsor, *clients]}
    for closed in closes:
        for voucher in vouchers(closed):
            assert net.execute_voucher(voucher.index, client.accounts[0])
    assert not net.execute_voucher(vouchers(closes[0])[0].index, sponsor)  # once only
    received = {who: balance_of(client.chain, token, who) - before[who] for who in before}
    expected: dict[str, int] = {who: 0 for who in before}
    for closed in closes:
        for recipient, amount in _transfers(closed):
            expected[recipient] += amount
    assert received == expected
    assert received[clients[3]] == 0  # the copier
    assert all(received[c] > 0 for c in clients[:3])
    assert sum(received.values()) == escrow  # payouts + refund == escrow, to the base unit
    assert balance_of(client.chain, token, client.app) == app_tokens_before
    assert market.client(sponsor).job(market.job_id)["status"] == "finished"


def test_the_sdk_on_the_node_types_rejections_and_decodes_replies(client: Client) -> None:
    """The SDK's NodeTransport alone: signed transactions, the node's JSON-RPC and inspect."""
    me = SdkClient(node_transport(client.devnet), client.accounts[4])
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


def _transfers(closed: Outcome) -> list[tuple[str, int]]:
    """(recipient, amount) of each ERC-20 transfer voucher, decoded by the SDK."""
    return [t for v in vouchers(closed) if (t := v.erc20_transfer()) is not None]
