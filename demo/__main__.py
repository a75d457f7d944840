"""``make demo``: the DeML marketplace end to end on the embedded devnet.

A sponsor escrows a reward token for a two-round job on scikit-learn's breast-cancer data;
three clients train on private partitions and one copies the global model; the DApp scores
every reveal on the sponsor's held-out shard, aggregates the winners with FedAvg and pays
by voucher; the vouchers are executed on chain once the epoch is claimed.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from deml_console.datasets import Features, Labels
from deml_console.sdk import notice, vouchers
from devnet.contracts import balance_of
from devnet.stack import Devnet, DevnetConfig

from .marketplace import WINDOW, Market
from .node_client import Client, node_transport

TOKEN = 10**18


def show(text: str) -> None:
    print(text, flush=True)


def accuracy(model: bytes, X: Features, y: Labels) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"X": X})[0][:, 0]
    return float(((probabilities >= 0.5) == y).mean())


def play_round(
    market: Market, client: Client, round_index: int, global_model: bytes, names: dict[str, str]
) -> tuple[bytes, list[int]]:
    sponsor, clients = market.sponsor, market.clients
    show(f"\n== Round {round_index + 1}")
    models = [market.train(i, global_model) for i in range(3)] + [global_model]
    for index, (who, model) in enumerate(zip(clients, models, strict=True)):
        market.commit(who, model, round_index)
        if index < 3:
            X, y = market.federation.partitions[index]
            show(
                f"  {names[who]:<7} trains on its private data (accuracy there "
                f"{accuracy(model, X, y):.3f}) and commits a sealed hash"
            )
        else:
            show(f"  {names[who]:<7} commits the global model unchanged")
    market.net.send(sponsor, b"\0\0\0\0", advance_time=WINDOW)  # block time passes
    market.reveal_holdout(round_index)
    rnd = market.client(sponsor).round(market.job_id, round_index)
    show(f"  sponsor reveals the held-out shard: baseline log-loss score {rnd['baseline']}")
    for who, model in zip(clients, models, strict=True):
        market.reveal(who, model, round_index)
    market.net.send(sponsor, b"\0\0\0\0", advance_time=2 * WINDOW)
    closed = market.client(clients[0]).close_round(market.job_id, round_index)
    result = notice(closed, "RoundClosed").fields
    paid = dict(zip((p.lower() for p in result["paid"]), result["amounts"], strict=True))
    for who, score, ok in zip(result["clients"], result["scores"], result["accepted"], strict=True):
        reward = paid.get(who.lower(), 0) / TOKEN
        show(
            f"  {names[who.lower()]:<7} score {score:>8}  gain {score - result['baseline']:>7}"
            f"  {'accepted' if ok else 'rejected'}  reward {reward:10.4f} DEML"
        )
    show(f"  new global model {result['newModelCid']}")
    paid_by = [voucher.index for voucher in vouchers(closed)]
    return market.client(sponsor).fetch_blob(result["newModelCid"]), paid_by


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="deml-demo-") as state:
        show("Starting the devnet (anvil, Cartesi Rollups 2.2.0, host-mode node)...")
        with Devnet(DevnetConfig(state_dir=Path(state), port=0, epoch_length=20)) as devnet:
            client = Client(devnet)
            show(f"  application {client.app}, node {devnet.info['node_url']}")
            run(client)
    show(f"\nDemo finished in {time.monotonic() - started:.1f} s.")
    return 0


def run(client: Client) -> None:
    token = client.info["reward_token"]
    sponsor, *clients = client.accounts[5:10]
    names = {
        sponsor: "sponsor",
        clients[0]: "alice",
        clients[1]: "bob",
        clients[2]: "carol",
        clients[3]: "copycat",
    }
    net = node_transport(client.devnet)
    market = Market(net, sponsor=sponsor, clients=clients)
    escrow = 9_000 * TOKEN
    market.post(escrow, token=token, metric="log_loss")
    show(
        f"\nSponsor posts job {market.job_id}: 9000 DEML escrowed through the ERC20Portal, "
        "2 rounds, logistic regression, metric log-loss"
    )
    global_model, paid_indices = market.initial_model, []
    for round_index in (0, 1):
        global_model, paid = play_round(market, client, round_index, global_model, names)
        paid_indices += paid
    show("\n== Settlement on the base layer")
    client.close_epoch()
    before = {who: balance_of(client.chain, token, who) for who in names}
    for index in paid_indices:  # anyone may execute a voucher: account 0 pays the gas
        assert net.execute_voucher(index, client.accounts[0])
    show(f"  epoch claimed; {len(paid_indices)} vouchers executed by the Application contract")
    total = 0
    for who, name in names.items():
        delta = balance_of(client.chain, token, who) - before[who]
        total += delta
        show(f"  {name:<7} received {delta / TOKEN:12.4f} DEML")
    status = "OK" if total == escrow else "MISMATCH"
    show(
        f"  paid out + refunded = {total / TOKEN:.4f} DEML of {escrow / TOKEN:.0f} escrowed: "
        f"{status}"
    )
    if total != escrow:
        raise SystemExit(1)


if __name__ == "__main__":
    sys.exit(main())
