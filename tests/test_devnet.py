"""The whole stack: real anvil, the real Rollups 2.2.0 contracts, our host-mode node."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deml_console.cli import app as deml
from deml_console.sdk.node import NodeError
from deml_protocol import inputs
from deml_protocol.uploads import upload_inputs
from demo.node_client import Client
from devnet import replay as replay_module
from devnet.__main__ import main
from devnet.chain import TransactionReverted
from devnet.contracts import balance_of
from devnet.in_process import InProcessMachine
from devnet.replay import claims_from_store, inputs_from_store, replay, summary
from devnet.stack import Devnet, DevnetConfig
from devnet.store import Store

pytestmark = pytest.mark.devnet
ETH = 10**18


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    state = tmp_path_factory.mktemp("devnet")
    with Devnet(DevnetConfig(state_dir=state, port=0, epoch_length=10)) as stack:
        yield stack


@pytest.fixture
def client(devnet: Devnet) -> Client:
    return Client(devnet)


def test_deposits_withdrawals_claims_and_execution(client: Client) -> None:
    alice, token = client.accounts[1], client.info["reward_token"]
    client.rollups.deposit_ether(client.app, value_wei=2 * ETH, sender=alice)
    client.rollups.deposit_erc20(token, client.app, amount=700, sender=alice)
    client.sync()
    assert client.inspect(f"balances/{alice}") == {
        "address": alice,
        "ether": str(2 * ETH),
        "erc20": {token: "700"},
    }

    first_output = client.output_count()
    client.rollups.add_input(client.app, inputs.WITHDRAW_ETHER.encode(ETH // 2), sender=alice)
    client.rollups.add_input(client.app, inputs.WITHDRAW_ERC20.encode(token, 300), sender=alice)
    client.close_epoch()

    ether_before = client.chain.get_balance(alice)
    tokens_before = balance_of(client.chain, token, alice)
    client.execute(first_output)  # account 0 pays the gas; the voucher pays alice
    client.execute(first_output + 1)
    assert client.chain.get_balance(alice) - ether_before == ETH // 2
    assert balance_of(client.chain, token, alice) - tokens_before == 300
    with pytest.raises(TransactionReverted) as reverted:
        client.execute(first_output)
    assert reverted.value.selector == bytes.fromhex("7b97a6bb")  # OutputNotReexecutable
    assert client.inspect(f"balances/{alice}") == {
        "address": alice,
        "ether": str(2 * ETH - ETH // 2),
        "erc20": {token: "400"},
    }


def test_blob_upload_through_the_chain_and_notice_validation(
    client: Client, tmp_path: Path
) -> None:
    data = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(32_768))
    assert len(data) == 1 << 20
    cid, payloads = upload_inputs(data)
    blob_file = tmp_path / "blob.bin"
    blob_file.write_bytes(data)
    printed = CliRunner().invoke(deml, ["cid", str(blob_file)])
    assert printed.exit_code == 0 and printed.output.strip() == cid  # `deml cid` agrees
    bob = client.accounts[2]
    for payload in payloads:
        client.rollups.add_input(client.app, payload, sender=bob)
    client.sync()
    assert client.inspect(f"blobs/{cid}")["status"] == "stored"
    notices = client.rpc(
        "cartesi_listOutputs",
        application=client.app,
        output_type="0xc258d6e5",
        descending=True,
        limit=1,
    )["data"]
    client.close_epoch()
    notice = client.output(int(notices[0]["index"], 16))
    siblings = [bytes.fromhex(s[2:]) for s in notice["output_hashes_siblings"]]
    raw = bytes.fromhex(notice["raw_data"][2:])
    client.rollups.validate_output(
        client.app, raw, index=int(notice["index"], 16), siblings=siblings
    )
    with pytest.raises(TransactionReverted):
        client.rollups.validate_output(
            client.app, raw, index=int(notice["index"], 16) + 1, siblings=siblings
        )


def test_corrupted_chunk_through_the_chain_stores_nothing(client: Client) -> None:
    data = bytes(range(256)) * 1024
    cid, payloads = upload_inputs(data)
    tampered = bytearray(data[:64_512])
    tampered[0] ^= 1
    payloads[1] = inputs.PUT_CHUNK.encode(cid, 0, bytes(tampered))
    carol = client.accounts[3]
    for payload in payloads:
        client.rollups.add_input(client.app, payload, sender=carol)
    client.sync()
    last = client.rpc("cartesi_listInputs", application=client.app, descending=True, limit=1)[
        "data"
    ][0]
    assert last["status"] == "REJECTED"
    report = client.rpc("cartesi_listReports", application=client.app, input_index=last["index"])[
        "data"
    ][0]
    assert b"cid_mismatch" in bytes.fromhex(report["raw_data"][2:])
    assert client.inspect(f"blobs/{cid}")["status"] == "uploading"


def test_node_json_rpc_shapes(client: Client) -> None:
    dave = client.accounts[4]
    client.rollups.deposit_ether(client.app, value_wei=5, sender=dave)
    client.rollups.add_input(client.app, inputs.WITHDRAW_ETHER.encode(5), sender=dave)  # output
    client.rollups.add_input(client.app, b"\0\0\0\0", sender=dave)  # rejected: a report
    client.sync()
    app = client.rpc("cartesi_getApplication", application="deml")["data"]
    assert app["iapplication_address"] == client.app
    assert client.rpc("cartesi_getChainId")["data"] == "0x7a69"
    listed = client.rpc("cartesi_listInputs", application=client.app, limit=2, offset=1)
    assert listed["pagination"]["limit"] == 2 and listed["pagination"]["offset"] == 1
    assert all(i["index"].startswith("0x") for i in listed["data"])
    with pytest.raises(NodeError, match="-32000"):
        client.rpc("cartesi_getApplication", application="nope")
    outputs = client.rpc("cartesi_listOutputs", application="deml", limit=1000)["data"]
    reports = client.rpc("cartesi_listReports", application="deml", limit=1000)["data"]
    for kind, key, source in (
        ("cartesi_listOutputs", "epoch_index", outputs),
        ("cartesi_listOutputs", "input_index", outputs),
        ("cartesi_listReports", "epoch_index", reports),
        ("cartesi_listReports", "input_index", reports),
    ):
        value = source[-1][key]
        listed = client.rpc(kind, application="deml", limit=1000, **{key: value})["data"]
        assert listed and all(item[key] == value for item in listed)
    same_epoch = [o["index"] for o in outputs if o["epoch_index"] == outputs[-1]["epoch_index"]]
    assert [
        o["index"]
        for o in client.rpc(
            "cartesi_listOutputs",
            application="deml",
            limit=1000,
            epoch_index=outputs[-1]["epoch_index"],
        )["data"]
    ] == same_epoch


def test_inspect_refuses_a_negative_content_length(client: Client) -> None:
    import socket
    from urllib.parse import urlparse

    url = urlparse(client.info["inspect_url"])
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(
            f"POST {url.path} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
            "balances/0x00".encode()
        )
        assert conn.recv(200).startswith(b"HTTP/1.1 400")


# ---- python -m devnet replay: a validator re-executes the node's record ----------------------
def _copy_store(devnet: Devnet, to: Path) -> Path:
    """A consistent copy of the running node's SQLite store (WAL included)."""
    import sqlite3

    source = sqlite3.connect(devnet.config.state_dir / "node.sqlite")
    target = sqlite3.connect(to)
    source.backup(target)
    source.close()
    target.close()
    return to


def test_devnet_replay_agrees_with_the_node_and_the_chain(
    client: Client,
    devnet: Devnet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command as a validator runs it, on the inputs of every test above; the DApp runs
    in this process (the same code without the process start, ~1 s of `make test`'s budget;
    `make riscv-check` and the node's own replay run it as a process)."""
    monkeypatch.setattr(replay_module, "_machine", lambda riscv, log: InProcessMachine())
    client.close_epoch()
    config = tmp_path / "devnet.json"
    config.write_text(json.dumps(devnet.info))
    db = _copy_store(devnet, tmp_path / "node.sqlite")
    assert main(["replay", "--db", str(db), "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    count = Store(db).count("inputs")
    assert f"all {count} inputs agree" in printed, printed
    assert "DIFFERS" not in printed and "agrees with the claim (0x" in printed, printed


def test_devnet_replay_names_the_first_tampered_output(
    client: Client, devnet: Devnet, tmp_path: Path
) -> None:
    client.close_epoch()
    db = _copy_store(devnet, tmp_path / "node.sqlite")
    store = Store(db)
    victim = store.outputs()[1]  # tamper with the second output the node stored
    with store._tx() as sql:
        sql.execute("UPDATE outputs SET raw = ? WHERE idx = ?", (victim.raw[:-1] + b"!", 1))
    recorded, claims = inputs_from_store(store), claims_from_store(store)
    with InProcessMachine() as machine:
        report = replay(recorded, machine, claims)
    first = report.differences[0]
    assert (first.input_index, first.item) == (victim.input_index, f"output {victim.index}")
    assert summary(report)[0].startswith(f"FIRST DIFFERENCE: input {victim.input_index}, output 1")
    assert len(report.differences) == 1  # only that item; the roots come from the replay
    assert report.epochs and all(epoch.agrees for epoch in report.epochs)
