"""SIGKILL the node mid-stream: after a restart nothing is lost or processed twice, and its
outputs and claims equal those of a node that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from deml_protocol import inputs
from deml_protocol.abi import keccak256
from demo.node_client import wait_for
from devnet.contracts import Rollups
from devnet.merkle import OutputsMerkleTree, output_hash

pytestmark = pytest.mark.devnet
REPO = Path(__file__).resolve().parent.parent
ETH = 10**18
EPOCH = 10


class NodeProcess:
    def __init__(self, config: Path, db: Path, *, claims: bool) -> None:
        args = [sys.executable, "-m", "devnet", "node", "--config", str(config), "--db", str(db)]
        self.proc = subprocess.Popen(
            args + ([] if claims else ["--no-claims"]),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=os.environ | {"PYTHONPATH": str(REPO)},
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().decode().split()[-1]

    def rpc(self, method: str, **params: Any) -> Any:
        reply = requests.post(
            self.url + "/rpc",
            timeout=10,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        ).json()
        return reply["result"]

    def processed(self) -> int:
        return int(self.rpc("cartesi_getProcessedInputCount", application="deml")["data"], 16)

    def everything(self) -> dict[str, Any]:
        def listed(method: str) -> list[Any]:
            return self.rpc(method, application="deml", limit=10_000)["data"]

        inputs_ = [
            (i["index"], i["status"], i["outputs_hash"]) for i in listed("cartesi_listInputs")
        ]
        outputs = [
            (o["index"], o["input_index"], o["raw_data"]) for o in listed("cartesi_listOutputs")
        ]
        reports = [
            (r["index"], r["input_index"], r["raw_data"]) for r in listed("cartesi_listReports")
        ]
        return {"inputs": inputs_, "outputs": outputs, "reports": reports}

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@pytest.fixture
def app_config(rollups: Rollups, tmp_path: Path) -> Iterator[Path]:
    chain = rollups.chain
    owner = chain.accounts()[0]
    app = rollups.deploy_application(
        owner, epoch_length=EPOCH, template_hash=bytes(32), salt=keccak256(str(tmp_path).encode())
    )
    config = tmp_path / "devnet.json"
    config.write_text(
        json.dumps(
            {
                "rpc_url": chain.url,
                "chain_id": chain.chain_id(),
                "application": app.application,
                "authority": app.authority,
                "deployment_block": app.deployment_block,
                "epoch_length": EPOCH,
                "accounts": chain.accounts(),
            }
        )
    )
    yield config


def send_stream(rollups: Rollups, app: str, sender: str, count: int) -> None:
    for i in range(count):
        if i % 3 == 0:
            rollups.deposit_ether(app, value_wei=ETH, sender=sender)
        elif i % 3 == 1:
            rollups.add_input(app, inputs.WITHDRAW_ETHER.encode(ETH // 10 + i), sender=sender)
        else:
            rollups.add_input(app, inputs.WITHDRAW_ETHER.encode(100 * ETH), sender=sender)


def test_sigkill_and_restart(rollups: Rollups, app_config: Path, tmp_path: Path) -> None:
    info = json.loads(app_config.read_text())
    app, alice = info["application"], info["accounts"][1]
    node = NodeProcess(app_config, tmp_path / "node.sqlite", claims=True)
    send_stream(rollups, app, alice, 12)
    wait_for(lambda: node.processed() >= 5, 60, "the node to get going")
    node.kill()  # mid-stream: some inputs processed, some not even scanned yet
    send_stream(rollups, app, alice, 12)
    node = NodeProcess(app_config, tmp_path / "node.sqlite", claims=True)
    wait_for(lambda: node.processed() == 24, 60, "all 24 inputs")
    rollups.chain.mine(EPOCH + 1)
    wait_for(
        lambda: any(
            e["status"] == "CLAIM_ACCEPTED"
            for e in node.rpc("cartesi_listEpochs", application="deml")["data"]
            if int(e["last_block"], 16) >= rollups.chain.block_number() - EPOCH - 1
        ),
        60,
        "claims",
    )
    restarted = node.everything()

    reference = NodeProcess(app_config, tmp_path / "reference.sqlite", claims=False)
    wait_for(lambda: reference.processed() == 24, 60, "the reference node")
    assert restarted == reference.everything()
    assert [int(i[0], 16) for i in restarted["inputs"]] == list(range(24))

    tree = OutputsMerkleTree(output_hash(bytes.fromhex(o[2][2:])) for o in restarted["outputs"])
    epochs = node.rpc("cartesi_listEpochs", application="deml")["data"]
    for epoch in epochs:
        if epoch["status"] != "CLAIM_ACCEPTED":
            continue
        covered = [
            o
            for o in restarted["outputs"]
            if int(o[1], 16) < int(epoch["input_index_upper_bound"], 16)
        ]
        root = tree.root_at(len(covered))
        assert epoch["outputs_merkle_root"] == "0x" + root.hex()
        assert rollups.chain.call_fn(
            info["authority"],
            "isOutputsMerkleRootValid(address,bytes32)",
            app,
            root,
            returns=["bool"],
        )
    node.stop()
    reference.stop()
