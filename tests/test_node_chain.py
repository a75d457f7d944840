"""The node follows the chain safely: a backend that answers from behind, or with garbage,
loses no input and does not end the node; a reorg under scanned inputs stops it, saying so.

The node runs in this process against a JSON-RPC proxy in front of a real anvil; the proxy
misbehaves on cue (one reply each), as a load-balanced or broken RPC provider would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from deml_protocol import inputs
from deml_protocol.abi import keccak256
from devnet.anvil import Anvil
from devnet.chain import Chain
from devnet.contracts import Rollups, deploy_rollups
from devnet.node import Node, NodeConfig, NodeStopped, ReorgDetected
from devnet.store import Store

pytestmark = pytest.mark.devnet
EPOCH = 10


@dataclass
class Faults:
    """What the proxy does to the next matching reply (each fault fires once)."""

    hide_logs: bool = False  # the next non-empty eth_getLogs answers [] (a lagging backend)
    garbage_block_number: bool = False  # the next eth_blockNumber answers a non-number
    fired: list[str] = field(default_factory=list)


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, faults: Faults) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream, self.faults, self.lock = upstream, faults, threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Proxy

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        headers = {"Content-Type": "application/json"}
        reply = requests.post(self.server.upstream, data=body, headers=headers, timeout=30).json()
        method = json.loads(body).get("method")
        faults = self.server.faults
        with self.server.lock:
            if method == "eth_getLogs" and faults.hide_logs and reply.get("result"):
                faults.hide_logs = False
                faults.fired.append("hid logs")
                reply["result"] = []
            elif method == "eth_blockNumber" and faults.garbage_block_number:
                faults.garbage_block_number = False
                faults.fired.append("garbage")
                reply["result"] = {"not": "a number"}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@dataclass
class Running:
    node: Node
    stop: threading.Event
    thread: threading.Thread

    def processed(self) -> int:
        return self.node.processed_input_count()


def start_node(rollups: Rollups, rpc_url: str, db: Path) -> Running:
    owner = rollups.chain.accounts()[0]
    salt = keccak256(str(db).encode())
    app = rollups.deploy_application(owner, epoch_length=EPOCH, template_hash=bytes(32), salt=salt)
    config = NodeConfig(
        rpc_url=rpc_url,
        application=app.application,
        authority=app.authority,
        deployment_block=app.deployment_block,
        epoch_length=EPOCH,
        claimer=None,
    )
    node = Node(config, Store(db)).start()
    stop = threading.Event()

    def run() -> None:
        try:
            node.run(stop, poll_interval_s=0.05)
        except BaseException:
            pass  # kept in node.failure; wait_until raises NodeStopped with it

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return Running(node, stop, thread)


@pytest.fixture
def running() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(rollups: Rollups, rpc_url: str, db: Path) -> Running:
        started.append(start_node(rollups, rpc_url, db))
        return started[-1]

    yield start
    for one in started:
        one.stop.set()
        one.thread.join()
        one.node.stop()


def test_a_lagging_or_broken_backend_loses_no_input(
    rollups: Rollups, tmp_path: Path, running: Callable[..., Running]
) -> None:
    faults = Faults()
    proxy = Proxy(rollups.chain.url, faults)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        one = running(rollups, proxy.url, tmp_path / "node.sqlite")
        app, alice = one.node.config.application, rollups.chain.accounts()[1]
        faults.hide_logs = faults.garbage_block_number = True
        for amount in (1, 2, 3):
            rollups.add_input(app, inputs.WITHDRAW_ETHER.encode(amount), sender=alice)
        one.node.wait_until(lambda: one.processed() == 3)
        assert sorted(faults.fired) == ["garbage", "hid logs"]
        indexes = [row.index for row in one.node.store.inputs()]
        assert indexes == [0, 1, 2] and one.thread.is_alive()
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_a_reorg_under_scanned_inputs_stops_the_node(
    tmp_path: Path, running: Callable[..., Running]
) -> None:
    with Anvil() as anvil:  # its own chain: rewinding the shared one would break other tests
        chain = Chain(anvil.url)
        rollups = deploy_rollups(chain, chain.accounts()[0])
        one = running(rollups, anvil.url, tmp_path / "node.sqlite")
        app, alice = one.node.config.application, chain.accounts()[1]
        snapshot = chain.rpc("evm_snapshot")
        rollups.add_input(app, inputs.WITHDRAW_ETHER.encode(1), sender=alice)
        one.node.wait_until(lambda: one.processed() == 1)
        chain.rpc("evm_revert", snapshot)  # the input's block is gone...
        chain.mine(3)  # ...and other blocks stand at its height and past it
        with pytest.raises(NodeStopped) as stopped:
            one.node.wait_until(lambda: False)
        assert isinstance(one.node.failure, ReorgDetected), stopped.value
        chain.close()


def test_a_dapp_killed_between_inputs_costs_no_input(
    rollups: Rollups, tmp_path: Path, running: Callable[..., Running]
) -> None:
    """A host-side failure (the DApp process killed) is retried on a DApp rebuilt by replay:
    the input is processed as any node would process it, not marked EXCEPTION forever."""
    one = running(rollups, rollups.chain.url, tmp_path / "node.sqlite")
    app, alice = one.node.config.application, rollups.chain.accounts()[1]
    rollups.deposit_ether(app, value_wei=10**18, sender=alice)
    one.node.wait_until(lambda: one.processed() == 1)
    process = one.node.machine.process
    assert process is not None
    process.kill()  # idle, waiting for its next request: nothing about the next input
    process.wait()
    rollups.add_input(app, inputs.WITHDRAW_ETHER.encode(10**17), sender=alice)
    one.node.wait_until(lambda: one.processed() == 2)
    statuses = [row.status for row in one.node.store.inputs()]
    assert statuses == ["ACCEPTED", "ACCEPTED"]  # the deposit was replayed, the withdrawal ran
    assert one.node.machine.process is not process and one.thread.is_alive()
