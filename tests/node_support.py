"""Helpers for tests of the host-mode node against a real anvil: a misbehaving JSON-RPC proxy,
a node running in a thread of the test process, and the node's whole record to compare."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from deml_protocol.abi import keccak256
from devnet.contracts import AppDeployment, Rollups
from devnet.node import Node, NodeConfig
from devnet.store import Store

EPOCH = 10


@dataclass
class Faults:
    """What the proxy does to the next matching request (each fault fires once)."""

    hide_logs: bool = False  # the next non-empty eth_getLogs answers [] (a lagging backend)
    garbage_block_number: bool = False  # the next eth_blockNumber answers a non-number
    #: The next request of this method: the connection is closed before it is forwarded.
    drop_before: str | None = None
    #: The next request of this method is forwarded (it takes effect on the chain), then the
    #: connection is closed halfway through the reply.
    drop_after: str | None = None
    #: The next reply of this method is held back until another request arrives (the client
    #: gave up waiting and retried), then sent, late, to whoever still listens.
    hold: str | None = None
    #: Called with the method of each request once it is forwarded, before the reply.
    after_forward: Callable[[str], None] | None = None
    fired: list[str] = field(default_factory=list)


class Proxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, faults: Faults) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream, self.faults, self.lock = upstream, faults, threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Proxy:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def _take(faults: Faults, name: str, method: str) -> bool:
    """True (once) if the fault ``name`` is set for ``method``; records that it fired."""
    if getattr(faults, name) != method:
        return False
    setattr(faults, name, None)
    faults.fired.append(f"{name} {method}")
    return True


class _Handler(BaseHTTPRequestHandler):
    server: Proxy
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        method = str(json.loads(body).get("method"))
        proxy, faults = self.server, self.server.faults
        with proxy.lock:
            proxy.requests += 1
            seen = proxy.requests
            proxy.arrived.notify_all()
            drop_before = _take(faults, "drop_before", method)
            drop_after = _take(faults, "drop_after", method)
            hold = _take(faults, "hold", method)
        if drop_before:
            self._hang_up()
            return
        headers = {"Content-Type": "application/json"}
        reply = requests.post(proxy.upstream, data=body, headers=headers, timeout=30).json()
        if faults.after_forward is not None:
            faults.after_forward(method)
        with proxy.lock:
            if method == "eth_getLogs" and faults.hide_logs and reply.get("result"):
                faults.hide_logs = False
                faults.fired.append("hid logs")
                reply["result"] = []
            elif method == "eth_blockNumber" and faults.garbage_block_number:
                faults.garbage_block_number = False
                faults.fired.append("garbage")
                reply["result"] = {"not": "a number"}
            if hold:
                while proxy.requests == seen:  # until the client asks again
                    proxy.arrived.wait()
        data = json.dumps(reply).encode()
        if drop_after:
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data))
            self.wfile.write(data[: len(data) // 2])
            self._hang_up()
            return
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # a held reply: the client is gone

    def _hang_up(self) -> None:
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@dataclass
class Running:
    node: Node
    stop: threading.Event
    thread: threading.Thread

    def processed(self) -> int:
        return self.node.processed_input_count()

    def halt(self) -> None:
        self.stop.set()
        self.thread.join()
        self.node.stop()


def deploy_app(rollups: Rollups, salt: str) -> AppDeployment:
    owner = rollups.chain.accounts()[0]
    return rollups.deploy_application(
        owner, epoch_length=EPOCH, template_hash=bytes(32), salt=keccak256(salt.encode())
    )


def node_config(
    app: AppDeployment, rpc_url: str, *, claimer: str | None = None, **options: Any
) -> NodeConfig:
    return NodeConfig(
        rpc_url=rpc_url,
        application=app.application,
        authority=app.authority,
        deployment_block=app.deployment_block,
        epoch_length=EPOCH,
        claimer=claimer,
        **options,
    )


def run_node(config: NodeConfig, db: Path) -> Running:
    """A node started on ``db`` and stepping in a thread until :meth:`Running.halt`."""
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


def record_of(node: Node) -> dict[str, Any]:
    """Everything the node stored that another node on the same chain must store too."""
    store = node.store
    return {
        "inputs": [(i.index, i.block_number, i.status, i.outputs_hash) for i in store.inputs()],
        "outputs": [(o.index, o.input_index, o.raw) for o in store.outputs()],
        "reports": [(r.index, r.input_index, r.raw) for r in store.reports()],
        "claims": [(c.epoch, c.last_block, c.root, c.output_count) for c in store.claims()],
        "root": node.tree.root(),
    }
