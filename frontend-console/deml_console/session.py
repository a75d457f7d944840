"""One command's connection: settings + signer -> a checked NodeTransport and a Client.

:meth:`Session.client` connects lazily, once, and checks before anything is sent that the
chain answers, that the node answers, and that both have the chain id the settings expect
(a wrong ``--rpc-url`` would otherwise sign transactions for another chain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from eth_account.signers.local import LocalAccount

from deml_protocol.addresses import ZERO_ADDRESS

from .sdk import Client
from .sdk.node import NodeError, NodeTransport, poll
from .settings import Settings

__all__ = ["NeedsAccount", "Session", "Unreachable", "WrongChain"]


class Unreachable(ConnectionError):
    """The chain or the node does not answer."""

    code: ClassVar[str] = "unreachable"


class WrongChain(ValueError):
    """The chain, the node and the settings disagree about the chain id."""

    code: ClassVar[str] = "wrong_chain"


class NeedsAccount(ValueError):
    """A command that sends was given no account."""

    code: ClassVar[str] = "no_account"


def _unreachable(what: str, url: str, exc: Exception) -> Unreachable:
    reason = type(exc).__name__ if not str(exc) else str(exc).split("\n")[0][:200]
    return Unreachable(
        f"cannot reach the {what} at {url} ({reason}). Is it running (`python -m devnet up`)? "
        "Check --rpc-url / --node-url, or `deml config show`"
    )


@dataclass
class Session:
    settings: Settings
    signer: LocalAccount | None = None
    wait_until: Callable[[Callable[[], bool]], None] = poll
    _transport: NodeTransport | None = field(default=None, init=False)

    @property
    def address(self) -> str | None:
        return None if self.signer is None else str(self.signer.address)

    def require_address(self) -> str:
        if self.address is None:
            raise NeedsAccount(
                "this command sends transactions: choose who signs with --account N (devnet), "
                "--keystore NAME, or DEML_PRIVATE_KEY (see `deml account --help`)"
            )
        return self.address

    def transport(self) -> NodeTransport:
        if self._transport is None:
            rpc_url, node_url, app = self.settings.require()
            transport = NodeTransport(
                rpc_url=rpc_url,
                node_url=node_url,
                app=app,
                signers=[] if self.signer is None else [self.signer],
                wait_until=self.wait_until,
                dev_chain=False,
            )
            self._check_chain(transport)
            self._transport = transport
        return self._transport

    def client(self, *, signing: bool = False) -> Client:
        """A Client as the signer (``signing=True`` requires one) or, to read, as nobody."""
        account = self.require_address() if signing else (self.address or ZERO_ADDRESS)
        return Client(self.transport(), account)

    def _check_chain(self, transport: NodeTransport) -> None:
        try:
            chain_id = int(transport.web3.eth.chain_id)
        except (requests.RequestException, OSError) as exc:
            raise _unreachable("chain", transport.rpc_url, exc) from exc
        try:
            node_chain = int(_data(transport.rpc("cartesi_getChainId")), 16)
            transport.rpc("cartesi_getApplication", application=transport.app)
        except (requests.RequestException, OSError) as exc:
            raise _unreachable("node", transport.node_url, exc) from exc
        except NodeError as exc:
            raise WrongChain(
                f"the node at {transport.node_url} does not run application {transport.app} "
                f"({exc}); check --app"
            ) from exc
        expected = self.settings.chain_id
        if node_chain != chain_id or (expected is not None and expected != chain_id):
            said = "" if expected is None else f", the settings expect {expected}"
            raise WrongChain(
                f"the chain at {transport.rpc_url} has chain id {chain_id}, the node at "
                f"{transport.node_url} follows chain id {node_chain}{said}: check --rpc-url "
                "and --node-url (`deml config show`)"
            )


def _data(reply: Any) -> Any:
    return reply["data"] if isinstance(reply, dict) and "data" in reply else reply
