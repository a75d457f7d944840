"""SIGKILL the node mid-stream: after a restart nothing is lost or processed twice, and its
outputs and claims equal those of a node that was never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from deml_protocol import inputs
from deml_protocol.abi import keccak256
from devnet.contracts import Rollups
from devnet.merkle import OutputsMerkleTree, output_hash
from tests.node_support import Faults, Proxy

pytestmark = pytest.mark.devnet
REPO = Path(__file__).resolve().parent.parent
ETH = 10**18
EPOCH = 10


class NodeProcess:
    """``python -m devnet node`` in a subprocess. Its output (stdout and stderr, one pipe) is
    read by a thread: the node logs a line after every input it processes and every claim it
    sends, so each line is the cue to re-check a condition (:meth:`wait_until`), and the end of
    the output means the node exited. No test here sleeps or has a deadline."""

    def __init__(
        self, config: Path, db: Path, *, claims: bool, snapshots: Path | None = None
    ) -> None:
        args = [sys.executable, "-m", "devnet", "node", "--config", str(config), "--db", str(db)]
        if snapshots is not None:
            args += ["--snapshot-dir", str(snapshots), "--snapshot-every", "2"]
        self.proc = subprocess.Popen(
            args + ([] if claims else ["--no-claims"]),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=os.environ | {"PYTHONPATH": str(REPO)},
        )
        self.lines: list[str] = []
        self.exited = False
        self._changed = threading.Condition()
        threading.Thread(target=self._read_output, daemon=True).start()
        self.url = ""
        self.wait_until(lambda: bool(self.url), "the node API")

    def _read_output(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # also drains the pipe, so the node never blocks on it
            line = raw.decode(errors="replace").rstrip("\n")
            with self._changed:
                if line.startswith("node API at ") and not self.url:
                    self.url = line.split()[-1]
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.exited = True
            self._changed.notify_all()

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Return once ``condition()`` holds; it is checked now and after each line the node
        writes. Fails at once, with the node's output, if the node exits first."""
        while True:
            with self._changed:
                seen, exited = len(self.lines), self.exited
            if exited:  # checked first: a dead node cannot answer the condition's RPC
                tail = "\n".join(self.lines[-30:])
                raise AssertionError(f"the node exited before {what}; its output:\n{tail}")
            if condition():
                return
            with self._changed:
                while len(self.lines) == seen and not self.exited:
                    self._changed.wait()

    def rpc(self, method: str, **params: Any) -> Any:
        reply = requests.post(
            self.url + "/rpc",
            timeout=10,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        ).json()
        return reply["result"]

    def processed(self) -> int:
        return int(self.rpc("cartesi_getProcessedInputCount", application="deml")["data"], 16)

    def epoch_status(self, epoch: int) -> str | None:
        """The epoch's status, or None while the node has no input in it (not scanned yet)."""
        epochs = self.rpc("cartesi_listEpochs", application="deml", limit=10_000)["data"]
        return next((str(e["status"]) for e in epochs if int(e["index"], 16) == epoch), None)

    def everything(self) -> dict[str, Any]:
        def listed(method: str) -> list[Any]:
            return list(self.rpc(method, application="deml", limit=10_000)["data"])

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

    def wait_exit(self) -> int:
        """The node's exit code, once it has exited by itself."""
        with self._changed:
            while not self.exited:
                self._changed.wait()
        return self.proc.wait()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()  # SIGTERM ends the node's loop after its current step


@pytest.fixture
def nodes() -> Iterator[Callable[..., NodeProcess]]:
    """Starts node processes and stops every one of them at teardown, even after a failure
    (a leftover node would keep polling the shared anvil for the rest of the session)."""
    started: list[NodeProcess] = []

    def start(
        config: Path, db: Path, *, claims: bool, snapshots: Path | None = None
    ) -> NodeProcess:
        started.append(NodeProcess(config, db, claims=claims, snapshots=snapshots))
        return started[-1]

    yield start
    for node in started:
        node.stop()


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


def test_sigkill_and_restart(
    rollups: Rollups, app_config: Path, tmp_path: Path, nodes: Callable[..., NodeProcess]
) -> None:
    info = json.loads(app_config.read_text())
    app, alice = info["application"], info["accounts"][1]
    # With snapshots every 2 inputs: the kill may land mid-snapshot too; the restart starts
    # from the last one recorded.
    snapshots = tmp_path / "snapshots"
    node = nodes(app_config, tmp_path / "node.sqlite", claims=True, snapshots=snapshots)
    send_stream(rollups, app, alice, 12)
    node.wait_until(lambda: node.processed() >= 5, "the node to get going")
    node.kill()  # mid-stream, mid-epoch: some inputs processed, some not even scanned yet
    send_stream(rollups, app, alice, 12)
    node = nodes(app_config, tmp_path / "node.sqlite", claims=True, snapshots=snapshots)
    node.wait_until(lambda: node.processed() == 24, "all 24 inputs")

    # Wait for the claim of the last input's epoch, by its index. Not "an epoch ending near the
    # chain head": every claim the node sends is a transaction and mines a block, so the head
    # moves on by one per claim and, when the node had more epochs to claim than blocks were
    # left in the last epoch, no epoch ever ended near enough (issue 8: one run in four).
    last = node.rpc("cartesi_getInput", application="deml", input_index=hex(23))["data"]
    epoch = int(last["epoch_index"], 16)
    rollups.chain.mine_until((epoch + 1) * EPOCH - 1)  # the epoch's last block exists: it ended
    node.wait_until(lambda: node.epoch_status(epoch) == "CLAIM_ACCEPTED", f"claim of {epoch}")
    restarted = node.everything()

    reference = nodes(app_config, tmp_path / "reference.sqlite", claims=False)
    reference.wait_until(lambda: reference.processed() == 24, "the reference node")
    assert restarted == reference.everything()
    assert [int(i[0], 16) for i in restarted["inputs"]] == list(range(24))
    assert any("after the snapshot taken after input" in line for line in node.lines)

    tree = OutputsMerkleTree(output_hash(bytes.fromhex(o[2][2:])) for o in restarted["outputs"])
    epochs = node.rpc("cartesi_listEpochs", application="deml")["data"]
    # The node claims finished epochs in order, so with the last one claimed every epoch is.
    assert [e["status"] for e in epochs] == ["CLAIM_ACCEPTED"] * len(epochs)
    for epoch_row in epochs:
        covered = [
            o
            for o in restarted["outputs"]
            if int(o[1], 16) < int(epoch_row["input_index_upper_bound"], 16)
        ]
        root = tree.root_at(len(covered))
        assert epoch_row["outputs_merkle_root"] == "0x" + root.hex()
        assert rollups.chain.call_fn(
            info["authority"],
            "isOutputsMerkleRootValid(address,bytes32)",
            app,
            root,
            returns=["bool"],
        )


def _claim_on_chain_first(
    rollups: Rollups,
    app_config: Path,
    tmp_path: Path,
    nodes: Callable[..., NodeProcess],
    *,
    root_of: Callable[[bytes], bytes],
) -> tuple[NodeProcess, int, str]:
    """The state a SIGKILL leaves when it lands after the node's submitClaim was mined and
    before the node stored it (a window that widens on a loaded machine): the claim of the
    last epoch is on chain and not in the node's database. Here the claim is sent from the
    node's own account (the Authority's owner), byte for byte what the node sends, with
    ``root_of(the node's root)``; then a claiming node starts on a fresh database."""
    info = json.loads(app_config.read_text())
    app, owner, alice = info["application"], info["accounts"][0], info["accounts"][1]
    send_stream(rollups, app, alice, 3)
    epoch = rollups.chain.block_number() // EPOCH
    last_block = (epoch + 1) * EPOCH - 1
    rollups.chain.mine_until(last_block)
    reader = nodes(app_config, tmp_path / "reader.sqlite", claims=False)
    reader.wait_until(lambda: reader.processed() == 3, "the reader node")
    outputs = reader.everything()["outputs"]
    root = OutputsMerkleTree(output_hash(bytes.fromhex(o[2][2:])) for o in outputs).root()
    receipt = rollups.submit_claim(
        info["authority"], app, last_block=last_block, root=root_of(root), sender=owner
    )
    return nodes(app_config, tmp_path / "node.sqlite", claims=True), epoch, receipt.tx_hash


def test_a_claim_already_on_chain_is_adopted(
    rollups: Rollups, app_config: Path, tmp_path: Path, nodes: Callable[..., NodeProcess]
) -> None:
    node, epoch, tx_hash = _claim_on_chain_first(
        rollups, app_config, tmp_path, nodes, root_of=lambda root: root
    )
    node.wait_until(lambda: node.epoch_status(epoch) == "CLAIM_ACCEPTED", f"claim of {epoch}")
    claimed = node.rpc("cartesi_getEpoch", application="deml", epoch_index=hex(epoch))["data"]
    assert claimed["claim_transaction_hash"] == tx_hash  # adopted, not sent again


def test_a_claim_on_chain_with_another_root_stops_the_node(
    rollups: Rollups, app_config: Path, tmp_path: Path, nodes: Callable[..., NodeProcess]
) -> None:
    node, epoch, _ = _claim_on_chain_first(
        rollups, app_config, tmp_path, nodes, root_of=lambda root: keccak256(root)
    )
    assert node.wait_exit() != 0
    assert any("ClaimMismatch" in line for line in node.lines)


@pytest.mark.slow  # two node processes (~6 s): see docs/devnet.md, "Faults"
def test_sigkill_mid_claim(
    rollups: Rollups, app_config: Path, tmp_path: Path, nodes: Callable[..., NodeProcess]
) -> None:
    """SIGKILL lands while the node's claim is in flight: the proxy between the node and
    anvil forwards the node's submitClaim (it is mined) and kills the node before the reply.
    The restarted node finds the claim on chain and adopts it (no second claim: its root is
    the one the restarted node computes, or it would stop with ClaimMismatch)."""
    info = json.loads(app_config.read_text())
    app, alice = info["application"], info["accounts"][1]
    victims: list[NodeProcess] = []

    def kill_on_claim(method: str) -> None:
        if method == "eth_sendTransaction" and victims:
            victims.pop().kill()

    with Proxy(rollups.chain.url, Faults(after_forward=kill_on_claim)) as proxy:
        proxied = tmp_path / "proxied.json"
        proxied.write_text(json.dumps(info | {"rpc_url": proxy.url}))
        node = nodes(proxied, tmp_path / "node.sqlite", claims=True)
        victims.append(node)
        send_stream(rollups, app, alice, 3)
        epoch = rollups.chain.block_number() // EPOCH
        rollups.chain.mine_until((epoch + 1) * EPOCH - 1)
        assert node.wait_exit() == -signal.SIGKILL and not victims
    claim_topic = keccak256(b"ClaimSubmitted(address,address,uint256,bytes32)")
    sent = rollups.chain.get_logs(
        address=info["authority"], topics=[claim_topic], to_block="latest"
    )
    assert len(sent) == 1  # the claim the killed node sent is on chain

    node = nodes(app_config, tmp_path / "node.sqlite", claims=True)
    node.wait_until(lambda: node.epoch_status(epoch) == "CLAIM_ACCEPTED", f"claim of {epoch}")
    claimed = node.rpc("cartesi_getEpoch", application="deml", epoch_index=hex(epoch))["data"]
    assert claimed["claim_transaction_hash"] == sent[0].tx_hash  # adopted, not sent again
    record = node.everything()
    assert [int(i[0], 16) for i in record["inputs"]] == [0, 1, 2]  # each input once
    assert [int(o[0], 16) for o in record["outputs"]] == [0]  # the one paid withdrawal
