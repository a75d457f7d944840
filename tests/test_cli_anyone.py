"""``deml send|deposit|withdraw|inspect|outputs|execute|verify`` and ``deml devnet ...`` on a
real devnet (anvil, the Rollups contracts, the host-mode node): each command's happy path and
the errors a user can act on, through the command line (CliRunner), as a user types them."""

from __future__ import annotations

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

from deml_console.calls import BadCall, format_units, parse_amount, payload_from_args
from deml_console.cli import app
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
    assert payload_from_args("f(uint8[],bool,string)", ["[1,2]", "true", "hi"])[:4] == bytes.fromhex(
        Web3.keccak(text="f(uint8[],bool,string)")[:4].hex()
    )
    for first, args in [
        ("withdrawEther(uint256)", []),
        ("withdrawEther(uint256)", ["five"]),
        ("f(address)", ["0x12"]),
        ("0xabc", []),
        ("not a signature", []),
        ("f((uint256,bool))", ["x"]),
    ]:
        with pytest.raises(BadCall):
            payload_from_args(first, args)


def test_amounts_are_exact() -> None:
    assert parse_amount("1.5") == 15 * 10**17
    assert parse_amount("1500wei") == 1500
    assert parse_amount("2", decimals=6) == 2_000_000
    assert format_units(15 * 10**17) == "1.5"
    for bad in ("0", "-1", "1e-30", "abc"):
        with pytest.raises(BadCall):
            parse_amount(bad)


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
    with Anvil(AnvilConfig(block_time_s=0.2, mixed_mining=True)) as chain:
        web3 = Web3(Web3.HTTPProvider(chain.url))
        start = web3.eth.block_number
        sender = web3.eth.accounts[0]
        tx = web3.eth.send_transaction({"from": sender, "to": sender, "value": 1})
        receipt = web3.eth.wait_for_transaction_receipt(tx, timeout=10, poll_latency=0.01)
        assert receipt["status"] == 1
        assert receipt["blockNumber"] <= start + 1 + 1  # its own block, not a later interval
        # An idle chain still moves on: two more blocks come without any transaction.
        idle = threading.Event()
        while web3.eth.block_number < receipt["blockNumber"] + 2:
            idle.wait(0.05)
