"""``deml send|deposit|withdraw|inspect|outputs|execute|verify`` and ``deml devnet ...`` on a
real devnet (anvil, the Rollups contracts, the host-mode node): each command's happy path and
the errors a user can act on, through the command line (CliRunner), as a user types them."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from typer.testing import CliRunner, Result
from web3 import Web3
from web3.types import Wei

from deml_console import verify as verify_module
from deml_console.calls import BadCall, format_units, parse_amount, payload_from_args
from deml_console.cli import app
from deml_console.node_outputs import OutputReader
from deml_console.verify import VERIFIABLE_POLICIES, aggregation_policy
from deml_protocol import inputs
from demo.marketplace import WINDOW, Market
from demo.node_client import node_transport
from devnet.anvil import Anvil, AnvilConfig
from devnet.stack import Devnet, DevnetConfig

#: Accounts 1 and 2 of anvil's public test mnemonic.
ACCOUNT_1 = "0x70997970c51812dc3a010c7d01b50e0d17dc79c8"
ACCOUNT_2 = "0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc"


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    state = tmp_path_factory.mktemp("anyone")
    with Devnet(DevnetConfig(state_dir=state, port=0, epoch_length=10)) as stack:
        yield stack


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DEML_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DEML_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def deml(devnet: Devnet, *args: str) -> Result:
    where = str(devnet.config.state_dir / "devnet.json")
    return CliRunner().invoke(app, [*args, "--devnet", where])


def ok(devnet: Devnet, *args: str) -> Any:
    """``deml ARGS --json``: exit 0, the JSON result."""
    result = deml(devnet, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def error(devnet: Devnet, *args: str) -> str:
    """``deml ARGS``: exit 1, one ``error[code]`` line and no traceback; the code."""
    result = deml(devnet, *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error["), result.stderr
    return result.stderr[len("error[") : result.stderr.index("]")]


def wait_claimed(devnet: Devnet, index: int) -> None:
    """Mine to the end of the output's epoch, then wait for the node's claim of it."""
    net = node_transport(devnet)
    output = net.rpc("cartesi_getOutput", application=net.app, output_index=hex(index))["data"]
    last = (int(output["epoch_index"], 16) + 1) * devnet.config.epoch_length - 1
    head = net.web3.eth.block_number
    if last > head:
        net.web3.provider.make_request("anvil_mine", [hex(last - head)])  # type: ignore[arg-type]

    def claimed() -> bool:
        got = net.rpc("cartesi_getOutput", application=net.app, output_index=hex(index))
        return got["data"]["output_hashes_siblings"] is not None

    devnet.wait_until(claimed)


# ---- no chain ---------------------------------------------------------------------------
def test_payloads_from_the_command_line() -> None:
    assert payload_from_args("withdrawEther(uint256)", ["5"]) == inputs.WITHDRAW_ETHER.encode(5)
    token = "0x" + "ab" * 20
    got = payload_from_args("withdrawERC20(address,uint256)", [token, "0x10"])
    assert got == inputs.WITHDRAW_ERC20.encode(token, 16)
    assert payload_from_args("0xdeadbeef", []) == bytes.fromhex("deadbeef")
    assert payload_from_args("f(uint8[],bool,string)", ["[1,2]", "true", "hi"])[
        :4
    ] == bytes.fromhex(Web3.keccak(text="f(uint8[],bool,string)")[:4].hex())
    for first, args in [
        ("withdrawEther(uint256)", []),
        ("withdrawEther(uint256)", ["five"]),
        ("f(address)", ["0x12"]),
        ("0xabc", []),
        ("not a signature", []),
        ("f((uint256,bool))", ["x"]),
        ("foo(uint256[])", ["[1,"]),  # not JSON
    ]:
        with pytest.raises(BadCall):
            payload_from_args(first, args)


def test_amounts_are_exact() -> None:
    assert parse_amount("1.5") == 15 * 10**17
    assert parse_amount("1500wei") == 1500
    assert parse_amount("2", decimals=6) == 2_000_000
    assert format_units(15 * 10**17) == "1.5"
    for bad in ("0", "-1", "1e-30", "abc", "inf", "Infinity", "-inf", "nan", "1e999999999"):
        with pytest.raises(BadCall):
            parse_amount(bad)
    # beyond a Decimal's 28 digits: not one wei rounded away
    assert parse_amount("12345678901.000000000000000001") == 12345678901 * 10**18 + 1
    assert parse_amount("1.5e3") == 1500 * 10**18
    with pytest.raises(BadCall, match="more than 18 decimals"):
        parse_amount("1.0000000000000000001")
    with pytest.raises(BadCall, match="more than 6 decimals"):
        parse_amount("12345678901234567890123456789.0000001", decimals=6)


def test_the_console_averages_exactly_like_the_dapp() -> None:
    """``deml verify`` recomputes FedAvg without the DApp's code: same bytes, same CID."""
    from dapp.fedavg import fedavg as dapp_fedavg
    from dapp.onnx_checks import parse_model
    from deml_console.aggregation import fedavg as console_fedavg
    from deml_console.model_zoo import get_weights, logistic_regression, mlp, with_weights

    rng = np.random.default_rng(7)
    base = logistic_regression(np.zeros(30))
    models = [logistic_regression(rng.normal(size=30), float(rng.normal())) for _ in range(5)]
    for count in (0, 1, 3, 5):
        chosen = models[:count]
        assert console_fedavg(base, chosen) == dapp_fedavg(parse_model(base), chosen)
    net = mlp([30, 8, 3], seed=1)  # several tensors, and int64 shape constants
    trained = [
        with_weights(net, {k: v + rng.normal(size=v.shape) for k, v in get_weights(net).items()})
        for _ in range(3)
    ]
    assert console_fedavg(net, trained) == dapp_fedavg(parse_model(net), trained)


def test_anvil_mixed_mining_mines_transactions_at_once_and_idle_blocks() -> None:
    """What `python -m devnet up` runs: a transaction is mined at once even with a long
    interval, and with a short one an idle chain moves on by itself."""
    with Anvil(AnvilConfig(block_time_s=3600, mixed_mining=True)) as chain:
        web3 = Web3(Web3.HTTPProvider(chain.url))
        sender = web3.eth.accounts[0]
        tx = web3.eth.send_transaction({"from": sender, "to": sender, "value": Wei(1)})
        assert web3.eth.wait_for_transaction_receipt(tx, timeout=20)["status"] == 1
    with Anvil(AnvilConfig(block_time_s=0.2, mixed_mining=True)) as chain:
        web3 = Web3(Web3.HTTPProvider(chain.url))
        start, idle = web3.eth.block_number, threading.Event()
        while web3.eth.block_number < start + 2:  # no transaction: the interval mines
            idle.wait(0.05)


# ---- on the devnet -----------------------------------------------------------------------
@pytest.mark.devnet
def test_deposit_withdraw_outputs_and_execute(devnet: Devnet) -> None:
    assert ok(devnet, "--account", "1", "deposit", "ether", "1")["status"] == "accepted"
    sent = ok(devnet, "--account", "1", "send", "withdrawEther(uint256)", "5")
    assert sent["vouchers"][0]["destination"] == ACCOUNT_1 and sent["vouchers"][0]["value"] == "5"
    withdrawn = ok(devnet, "--account", "1", "withdraw", "ether", "0.5")
    index = withdrawn["vouchers"][0]["index"]
    assert withdrawn["vouchers"][0]["value"] == str(5 * 10**17)

    mine = ok(devnet, "--account", "1", "outputs", "--mine")
    assert {o["index"] for o in mine} >= {index, sent["vouchers"][0]["index"]}
    assert ok(devnet, "outputs", "--input", str(withdrawn["input_index"]))[0]["index"] == index
    assert ok(devnet, "--account", "2", "outputs", "--mine") == []
    assert error(devnet, "--account", "1", "execute", str(index)) == "not_claimed"
    # Nothing mines here (blocks come with transactions only): --wait gives up, exit 1.
    waited = deml(devnet, "--account", "1", "execute", str(index), "--wait", "--timeout", "1")
    assert waited.exit_code == 1 and "still not claimed after 1s" in waited.stderr

    wait_claimed(devnet, index)
    web3 = node_transport(devnet).web3
    before = web3.eth.get_balance(Web3.to_checksum_address(ACCOUNT_1))
    # Anyone may execute a voucher; account 2 pays the gas, account 1 gets the ether.
    assert ok(devnet, "--account", "2", "execute", str(index))[0]["result"] == "executed"
    assert web3.eth.get_balance(Web3.to_checksum_address(ACCOUNT_1)) - before == 5 * 10**17
    results = {r["index"]: r["result"] for r in ok(devnet, "--account", "1", "execute")}
    assert results[index] == "already executed"
    assert results[sent["vouchers"][0]["index"]] in ("executed", "already executed")
    again = ok(devnet, "--account", "1", "execute", "--all")
    assert {r["result"] for r in again} == {"already executed"}
    listed = {o["index"]: o for o in ok(devnet, "outputs")}
    assert listed[index]["claimed"] and listed[index]["executed"]


@pytest.mark.devnet
def test_erc20_deposit_and_inspect(devnet: Devnet) -> None:
    got = ok(devnet, "--account", "2", "deposit", "erc20", "devnet", "12.5")
    assert got["status"] == "accepted"
    balances = ok(devnet, "inspect", f"balances/{ACCOUNT_2}")
    token = str(devnet.info["reward_token"]).lower()
    assert balances["erc20"][token] == str(125 * 10**17)
    shown = deml(devnet, "inspect", "jobs")
    assert shown.exit_code == 0 and json.loads(shown.stdout) == []
    withdrawn = ok(devnet, "--account", "2", "withdraw", "erc20", "devnet", "2.5")
    transfer = withdrawn["vouchers"][0]["erc20_transfer"]
    assert transfer == {"to": ACCOUNT_2, "amount": str(25 * 10**17)}


@pytest.mark.devnet
def test_errors_a_user_can_act_on(devnet: Devnet) -> None:
    assert error(devnet, "--account", "3", "withdraw", "ether", "1") == "insufficient_balance"
    assert error(devnet, "--account", "3", "deposit", "ether", "100000") == "balance_too_low"
    assert error(devnet, "--account", "3", "deposit", "erc20", "devnet", "1e9") == "balance_too_low"
    assert error(devnet, "--account", "3", "deposit", "erc20", "0x12", "1") == "bad_token"
    assert error(devnet, "--account", "3", "deposit", "erc20", ACCOUNT_2, "1") == "bad_token"
    assert error(devnet, "--account", "3", "send", "0xdeadbeef") == "unknown_selector"
    assert error(devnet, "--account", "3", "send", "withdrawEther(uint256)", "9") == (
        "insufficient_balance"
    )
    assert error(devnet, "--account", "3", "send", "withdrawEther(uint256)") == "bad_call"
    assert error(devnet, "send", "0x00") == "no_account"
    assert error(devnet, "inspect", "jobs/999") == "no_such_job"
    assert error(devnet, "inspect", "no/such/path") == "unknown_query"
    assert error(devnet, "--account", "3", "execute", "99999") == "no_such_output"
    assert error(devnet, "verify", "999") == "no_such_job"
    assert error(devnet, "--rpc-url", "http://127.0.0.1:1", "outputs") == "unreachable"


@pytest.mark.devnet
def test_devnet_advance_time_mine_and_anvil_behind_the_node(devnet: Devnet) -> None:
    moved = ok(devnet, "devnet", "advance-time", "3600")
    assert moved["after"]["timestamp"] - moved["before"]["timestamp"] >= 3600
    assert moved["after"]["block"] == moved["before"]["block"] + 1
    head = ok(devnet, "devnet", "mine", "3")
    assert head["block"] == moved["after"]["block"] + 3
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    reply = requests.post(str(devnet.info["anvil_url"]), json=body, timeout=10).json()
    assert int(reply["result"], 16) == 31337


def test_advance_time_refuses_a_chain_that_is_not_a_dev_chain(tmp_path: Path) -> None:
    class Geth(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers["Content-Length"]))
            data = json.dumps({"jsonrpc": "2.0", "id": 1, "result": "Geth/v1.14.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Geth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(app, ["devnet", "advance-time", "60", "--rpc-url", url])
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1
    assert result.stderr.startswith("error[not_dev_chain]: ") and "Geth" in result.stderr


@pytest.fixture(scope="module")
def closed_job(devnet: Devnet) -> tuple[int, dict[str, Any]]:
    """A one-round job (two trained models and a copy), closed with `deml send`; its id and
    the RoundClosed notice."""
    accounts = list(devnet.info["accounts"])
    net = node_transport(devnet)
    market = Market(net, sponsor=accounts[5], clients=accounts[6:9])
    holdout = market.job_spec()["holdoutCommitments"][:1]
    job = market.post(10**18, holdoutCommitments=holdout)
    models = [market.train(i, market.initial_model) for i in range(2)] + [market.initial_model]
    for who, model in zip(market.clients, models, strict=True):
        market.commit(who, model, 0)
    net.send(market.sponsor, b"\0\0\0\0", advance_time=WINDOW)
    market.reveal_holdout(0)
    for who, model in zip(market.clients, models, strict=True):
        market.reveal(who, model, 0)
    net.send(market.sponsor, b"\0\0\0\0", advance_time=2 * WINDOW)
    closed = ok(devnet, "--account", "7", "send", "closeRound(uint256,uint256)", str(job), "0")
    notice = next(n for n in closed["notices"] if n["name"] == "RoundClosed")
    assert len(notice["fields"]["paid"]) == 2  # the copy is not paid
    return job, notice


@pytest.mark.devnet
def test_verify_recomputes_fedavg_and_checks_the_notice_on_chain(
    devnet: Devnet, closed_job: tuple[int, dict[str, Any]]
) -> None:
    """The new global model is the FedAvg of the accepted models; validateOutput accepts
    the RoundClosed notice once its epoch is claimed."""
    job, notice = closed_job
    checks = ok(devnet, "verify", str(job))
    assert [(c["round"], c["aggregate"]) for c in checks] == [(0, "ok")]
    assert checks[0]["on_chain"] in ("not claimed yet", "valid")
    assert checks[0]["recomputed_cid"] == notice["fields"]["newModelCid"]
    wait_claimed(devnet, checks[0]["notice_index"])
    shown = deml(devnet, "verify", str(job))
    assert shown.exit_code == 0, shown.output
    assert "ok" in shown.stdout and "valid" in shown.stdout


@pytest.mark.devnet
def test_verify_reports_what_does_not_check_out(
    devnet: Devnet, closed_job: tuple[int, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    job, _ = closed_job
    index = ok(devnet, "verify", str(job))[0]["notice_index"]
    wait_claimed(devnet, index)
    # A notice altered by one bit is not in the claimed outputs root ...
    reader = OutputReader(node_transport(devnet))
    real = reader.output(index)
    forged = dataclasses.replace(real, raw=real.raw[:-1] + bytes([real.raw[-1] ^ 1]))
    assert reader.is_valid_on_chain(real) and not reader.is_valid_on_chain(forged)
    # ... and an aggregate that does not match is reported, exit 1.
    monkeypatch.setattr(verify_module, "fedavg", lambda base, models: base + b"\0")
    assert error(devnet, "verify", str(job)) == "verify_failed"
    assert ok_or_failed(devnet, "verify", str(job))[0]["aggregate"] == "mismatch"


def ok_or_failed(devnet: Devnet, *args: str) -> Any:
    result = deml(devnet, *args, "--json")
    return json.loads(result.stdout)


def test_only_fedavg_jobs_are_recomputed() -> None:
    assert aggregation_policy({}) == "fedavg"
    assert aggregation_policy({"aggregation": "FedAvg"}) in VERIFIABLE_POLICIES
    assert aggregation_policy({"aggregation": "trimmed_mean"}) not in VERIFIABLE_POLICIES


@pytest.mark.devnet
def test_every_key_of_devnet_json_is_documented(devnet: Devnet) -> None:
    written = json.loads((devnet.config.state_dir / "devnet.json").read_text())
    table = (Path(__file__).parents[1] / "docs" / "devnet.md").read_text()
    table = table[table.index("### devnet.json") :]
    assert [key for key in written if f"`{key}`" not in table] == []


@pytest.mark.devnet
def test_an_idle_devnet_still_claims_its_epochs(tmp_path: Path) -> None:
    """With interval mining (what `python -m devnet up` runs), nobody needs to send anything
    after a withdrawal for its voucher to become executable: `deml execute --wait` right
    after it executes it."""
    config = DevnetConfig(state_dir=tmp_path / "idle", port=0, epoch_length=4, block_time_s=0.2)
    with Devnet(config) as idle:
        assert ok(idle, "--account", "1", "deposit", "ether", "1")["status"] == "accepted"
        index = ok(idle, "--account", "1", "withdraw", "ether", "1")["vouchers"][0]["index"]
        # At once, as a user would: it waits for the claim (no transaction, no mining by
        # hand), then executes.
        executed = ok(idle, "--account", "1", "execute", "--wait")
        assert [(r["index"], r["result"]) for r in executed] == [(index, "executed")]


@pytest.mark.devnet
def test_every_read_only_command_prints_only_json_on_stdout(
    devnet: Devnet, closed_job: tuple[int, dict[str, Any]], tmp_path: Path
) -> None:
    """`--json` on every command that only reads: stdout is one JSON document (progress and
    narration go to stderr), before or after the command's own arguments."""
    job = str(closed_job[0])
    model = tmp_path / "m.bin"
    model.write_bytes(b"model")
    commands = [
        ["jobs"],
        ["job", "show", job],
        ["job", "status", job],
        ["outputs"],
        ["--account", "6", "outputs", "--mine"],
        ["inspect", f"jobs/{job}"],
        ["verify", job],
        ["--account", "6", "rewards"],
        ["config", "show"],
        ["account", "list"],
        ["cid", str(model)],
    ]
    for args in commands:
        result = deml(devnet, "--json", *args)
        assert result.exit_code == 0, (args, result.output)
        json.loads(result.stdout)  # nothing but the JSON document
    failed = deml(devnet, "--json", "job", "show", "999")
    assert failed.exit_code == 1 and failed.stdout == ""
