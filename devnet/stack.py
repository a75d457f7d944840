"""The whole development stack in one object: anvil, the contracts, the node and its API.

``Devnet.start()`` starts anvil (from the npm package), deploys the Cartesi Rollups 2.2.0
contracts at their canonical addresses and our reward token, creates an Application with its
Authority, starts the host-mode node (DApp process + guest API + chain follower + claimer)
and serves inspect + JSON-RPC on one port. ``devnet.json`` in the state directory tells
clients (the ``deml`` console, tests) where everything is.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deml_protocol import addresses
from deml_protocol.abi import keccak256
from devnet.anvil import Anvil, AnvilConfig
from devnet.api import NodeApi
from devnet.chain import Chain
from devnet.contracts import Rollups, deploy_rollups
from devnet.node import Node, NodeConfig
from devnet.rpc import AppInfo, RpcMethods
from devnet.solidity import deploy_reward_token
from devnet.store import Store

log = logging.getLogger("devnet")

#: The machine's template hash is unknown in host mode (no machine image); this marks it.
HOST_MODE_TEMPLATE_HASH = keccak256(b"deml host-mode machine")
REWARD_PER_ACCOUNT = 1_000_000 * 10**18


@dataclass(frozen=True, slots=True)
class DevnetConfig:
    state_dir: Path = Path(".devnet")
    port: int = 6751
    epoch_length: int = 10
    #: A block every this many seconds besides one per transaction (anvil's mixed mining), so
    #: an idle devnet still ends its epochs and the node claims them. None: one block per
    #: transaction only (tests that count blocks). ``python -m devnet up`` defaults to 2 s.
    block_time_s: float | None = None
    app_name: str = "deml"


class Devnet:
    def __init__(self, config: DevnetConfig | None = None) -> None:
        self.config = config or DevnetConfig()
        self.anvil: Anvil | None = None
        self.node: Node | None = None
        self.api: NodeApi | None = None
        self.info: dict[str, Any] = {}
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Devnet:
        """Start everything, or stop what was started and re-raise."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Devnet:
        started = time.monotonic()
        state_dir = self.config.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        self.anvil = Anvil(
            AnvilConfig(block_time_s=self.config.block_time_s, mixed_mining=True),
            log_path=state_dir / "anvil.log",
        ).start()
        chain = Chain(self.anvil.url)
        owner = chain.accounts()[0]
        rollups = deploy_rollups(chain, owner)
        token = deploy_reward_token(chain, chain.accounts(), amount_each=REWARD_PER_ACCOUNT)
        app = rollups.deploy_application(
            owner, epoch_length=self.config.epoch_length, template_hash=HOST_MODE_TEMPLATE_HASH
        )
        node_config = NodeConfig(
            rpc_url=self.anvil.url,
            application=app.application,
            authority=app.authority,
            deployment_block=app.deployment_block,
            epoch_length=self.config.epoch_length,
            claimer=owner,
            name=self.config.app_name,
        )
        db_path = state_dir / "node.sqlite"
        for stale in state_dir.glob("node.sqlite*"):  # a fresh chain needs a fresh node
            stale.unlink()
        self._start_node(node_config, Store(db_path), chain_id=chain.chain_id())
        self.info = self._describe(chain, rollups, token, node_config)
        self.info["startup_seconds"] = round(time.monotonic() - started, 2)
        (state_dir / "devnet.json").write_text(json.dumps(self.info, indent=2) + "\n")
        chain.close()
        return self

    def _start_node(self, config: NodeConfig, store: Store, *, chain_id: int) -> None:
        dapp_log = (self.config.state_dir / "dapp.log").open("ab")
        self.node = Node(config, store, dapp_log=dapp_log).start()
        app_info = AppInfo(
            name=config.name,
            address=config.application,
            consensus=config.authority,
            chain_id=chain_id,
            epoch_length=config.epoch_length,
            deployment_block=config.deployment_block,
            template_hash="0x" + HOST_MODE_TEMPLATE_HASH.hex(),
        )
        node = self.node
        rpc = RpcMethods(app_info, store, node.processed_input_count)
        self.api = NodeApi(
            rpc=rpc,
            inspect=node.inspect,
            app_names=(config.name, config.application),
            port=self.config.port,
            chain_url=config.rpc_url,
        ).start()
        self._thread = threading.Thread(target=self._run_node, name="node", daemon=True)
        self._thread.start()

    def _run_node(self) -> None:
        assert self.node is not None
        try:
            self.node.run(self._stop)
        except BaseException as exc:  # surfaced by wait()/stop(); the devnet is broken now
            log.exception("the node stopped")
            self.failure = exc
            self._stop.set()

    def _describe(
        self, chain: Chain, rollups: Rollups, token: str, node: NodeConfig
    ) -> dict[str, Any]:
        assert self.anvil is not None and self.api is not None
        return {
            "chain_id": chain.chain_id(),
            "rpc_url": self.anvil.url,
            "node_url": self.api.url,
            "anvil_url": f"{self.api.url}/anvil",
            "inspect_url": f"{self.api.url}/inspect/{node.application}",
            "jsonrpc_url": f"{self.api.url}/rpc",
            "application_name": node.name,
            "application": node.application,
            "authority": node.authority,
            "deployment_block": node.deployment_block,
            "epoch_length": node.epoch_length,
            "block_time": self.config.block_time_s,
            "input_box": addresses.INPUT_BOX,
            "ether_portal": addresses.ETHER_PORTAL,
            "erc20_portal": addresses.ERC20_PORTAL,
            "reward_token": token,
            "accounts": chain.accounts(),
            # Anvil's public test mnemonic: `deml --account N` signs as accounts[N].
            "mnemonic": self.anvil.config.mnemonic,
            "contracts": rollups.addresses,
        }

    def wait(self) -> None:
        """Block until stopped (Ctrl-C / SIGTERM in the caller) or the node fails."""
        self._stop.wait()

    def wait_until(self, condition: Callable[[], bool]) -> None:
        """Block until ``condition()`` holds; it is re-checked each time the node stores
        progress (:meth:`devnet.node.Node.wait_until`), so callers need not poll or sleep.
        Raises :class:`devnet.node.NodeStopped` if the node stops first."""
        if self.node is None:
            raise RuntimeError("the devnet is not started")
        self.node.wait_until(condition)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        if self.api is not None:
            self.api.close()
        if self.node is not None:
            self.node.stop()
            self.node.store.close()
        if self.anvil is not None:
            self.anvil.stop()

    def __enter__(self) -> Devnet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
