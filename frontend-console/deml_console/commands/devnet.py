"""``deml devnet advance-time|mine``: move a development chain's clock and head, e.g. to
open a job's next window without waiting. Refused on any chain that is not a development
chain (anvil, Hardhat, Ganache): a real chain's clock cannot move."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import requests
import typer

from ..cli import SETUP, app, current, reporting_errors

devnet_app = typer.Typer(help="Development chain only: move its clock, mine blocks.")
app.add_typer(devnet_app, name="devnet", rich_help_panel=SETUP)

_DEV_CLIENTS = ("anvil", "hardhat", "ganache")
_TIMEOUT_S = 30.0


class NotDevChain(RuntimeError):
    code: ClassVar[str] = "not_dev_chain"


class ChainError(RuntimeError):
    code: ClassVar[str] = "chain_error"


def _call(url: str, method: str, *params: Any) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
    reply = requests.post(url, json=body, timeout=_TIMEOUT_S).json()
    if "error" in reply:
        raise ChainError(f"{method} at {url}: {reply['error'].get('message', reply['error'])}")
    return reply["result"]


def _dev_chain_url() -> str:
    settings = current().settings()
    url = settings.rpc_url
    if not url:
        raise NotDevChain("no --rpc-url configured: start a devnet here, or pass --rpc-url")
    client = str(_call(url, "web3_clientVersion"))
    if not client.lower().startswith(_DEV_CLIENTS):
        raise NotDevChain(
            f"the chain at {url} is {client!r}, not a development chain (anvil): its clock "
            "cannot be moved; wait for the window instead"
        )
    return url


def _head(url: str) -> dict[str, int]:
    block = _call(url, "eth_getBlockByNumber", "latest", False)
    return {"block": int(block["number"], 16), "timestamp": int(block["timestamp"], 16)}


@devnet_app.command("advance-time")
def advance_time(
    seconds: Annotated[
        int, typer.Argument(metavar="SECONDS", min=1, help="Seconds of block time to let pass.")
    ],
) -> None:
    """Let SECONDS of block time pass (mines a block at the new time)."""
    with reporting_errors():
        url = _dev_chain_url()
        before = _head(url)
        _call(url, "evm_increaseTime", seconds)
        _call(url, "evm_mine")
        after = _head(url)
        data = {"seconds": seconds, "before": before, "after": after}
        current().output.result(
            data,
            lambda console: console.print(
                f"block {after['block']} at time {after['timestamp']} "
                f"(+{after['timestamp'] - before['timestamp']} s)"
            ),
        )


@devnet_app.command("mine")
def mine(
    blocks: Annotated[
        int, typer.Argument(metavar="BLOCKS", min=1, max=100_000, help="How many blocks.")
    ] = 1,
) -> None:
    """Mine BLOCKS empty blocks, e.g. to end an epoch.

    The node then claims the epoch, and its vouchers can be executed.
    """
    with reporting_errors():
        url = _dev_chain_url()
        _call(url, "anvil_mine", hex(blocks)) if blocks > 1 else _call(url, "evm_mine")
        head = _head(url)
        current().output.result(
            head,
            lambda console: console.print(f"block {head['block']} at time {head['timestamp']}"),
        )
