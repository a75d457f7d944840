"""What anyone can do: ``deml send``, ``deml deposit``, ``deml withdraw``, ``deml inspect``.

Outputs, execution and verification (``deml outputs``, ``deml execute``, ``deml verify``) are
in :mod:`deml_console.commands.settle`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from deml_protocol import queries
from deml_protocol.addresses import ZERO_ADDRESS
from deml_protocol.errors import InsufficientBalance

from ..assets import Asset, BalanceTooLow, asset_of, assets_of, describe_voucher, token_address
from ..calls import payload_from_args
from ..cli import ANYONE, app, current, reporting_errors
from ..output import jsonable
from ..sdk.results import Outcome, Voucher, accepted, notices, raw_reply, rejection, vouchers
from ..session import Session

deposit_app = typer.Typer(help="Put ether or ERC-20 tokens into the application (portals).")
withdraw_app = typer.Typer(help="Take ether or tokens out of the application (a voucher).")
app.add_typer(deposit_app, name="deposit", rich_help_panel=ANYONE)
app.add_typer(withdraw_app, name="withdraw", rich_help_panel=ANYONE)

Amount = Annotated[
    str,
    typer.Argument(
        metavar="AMOUNT", help="In ether or token units (1.5), or in base units (1500wei)."
    ),
]
Token = Annotated[
    str,
    typer.Argument(
        metavar="TOKEN", help="The ERC-20's address, or `devnet` for the devnet's reward token."
    ),
]


def outcome_data(outcome: Outcome, assets: Callable[[str], Asset]) -> dict[str, Any]:
    """An input's outcome as plain data: status, decoded notices and vouchers, reports."""
    return {
        "input_index": getattr(outcome, "input_index", None),
        "status": outcome.status,
        "notices": [
            {"index": n.index, "name": n.name, "fields": jsonable(n.fields)}
            for n in notices(outcome)
        ],
        "vouchers": [_voucher_data(v, assets) for v in vouchers(outcome)],
        "reports": [_report_text(r) for r in outcome.reports],
    }


def _voucher_data(voucher: Voucher, assets: Callable[[str], Asset]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "index": voucher.index,
        "destination": voucher.destination,
        "value": str(voucher.value),
        "payload": "0x" + voucher.payload.hex(),
        "what": describe_voucher(voucher, assets),
    }
    transfer = voucher.erc20_transfer()
    if transfer is not None:
        data["erc20_transfer"] = {"to": transfer[0], "amount": str(transfer[1])}
    return data


def _report_text(report: bytes) -> str:
    try:
        return report.decode()
    except UnicodeDecodeError:
        return "0x" + report.hex()


def render_outcome(data: dict[str, Any]) -> Any:
    def render(console: Console) -> None:
        console.print(f"input {data['input_index']}: {data['status']}")
        for n in data["notices"]:
            fields = ", ".join(f"{k}={v}" for k, v in n["fields"].items())
            console.print(f"  notice {n['index']} {n['name']}: {fields}")
        for v in data["vouchers"]:
            console.print(f"  voucher {v['index']}: {v['what']}", highlight=False)
        for r in data["reports"]:
            console.print(f"  report: {r}")

    return render


def _show(outcome: Outcome, *, hint: str | None = None) -> None:
    out = current().output
    data = outcome_data(accepted(outcome), assets_of(current().session().transport()))
    out.result(data, render_outcome(data))
    if hint:
        out.say(hint)


@app.command("send", rich_help_panel=ANYONE)
def send(
    payload: Annotated[
        str,
        typer.Argument(
            metavar="PAYLOAD",
            help="0x-hex bytes, or an ABI signature like 'withdrawEther(uint256)'.",
            show_default=False,
        ),
    ],
    args: Annotated[
        list[str] | None, typer.Argument(metavar="ARG", help="The signature's arguments.")
    ] = None,
) -> None:
    """Send any input and print its outcome.

    `deml send 0x...` sends raw bytes; `deml send 'withdrawEther(uint256)' 5` encodes a call
    (selector + ABI arguments, as `cast calldata`). Prints the notices, vouchers and reports
    it produced; a rejected input prints the DApp's error code and detail, and exits 1.
    """
    with reporting_errors():
        data = payload_from_args(payload, list(args or []))
        session = current().session()
        client = session.client(signing=True)
        outcome = client.transport.send(client.account, data)
        _raise_rejection(outcome)
        _show(outcome)


def _raise_rejection(outcome: Outcome) -> None:
    error = rejection(outcome)
    if error is not None:
        index = getattr(outcome, "input_index", None)
        raise type(error)(f"input {index} rejected: {error}")


@deposit_app.command("ether")
def deposit_ether(amount: Amount) -> None:
    """Deposit ether into your balance in the application.

    Through the EtherPortal; your wallet's balance is checked first.
    """
    with reporting_errors():
        session = current().session()
        client = session.client(signing=True)
        ether = asset_of(session.transport(), ZERO_ADDRESS)
        wei = ether.parse(amount)
        held = ether.balance(session.transport(), client.account)
        if held <= wei:
            raise BalanceTooLow(
                f"{client.account} holds {ether.show(held)}; depositing {ether.show(wei)} "
                "needs that much plus gas. Fund the account, or deposit less"
            )
        _show(client.deposit_ether(wei), hint=f"deposited {ether.show(wei)}")


def _token(session: Session, token: str) -> Asset:
    """TOKEN (an address, or ``devnet``: the devnet's reward token), checked on chain."""
    address = token_address(token, devnet_token=session.settings.reward_token)
    return asset_of(session.transport(), address, is_strict=True)


@deposit_app.command("erc20")
def deposit_erc20(token: Token, amount: Amount) -> None:
    """Deposit ERC-20 tokens into your balance in the application.

    Through the ERC20Portal, approved first for what the allowance lacks; your wallet's
    balance is checked first.
    """
    with reporting_errors():
        session = current().session()
        client = session.client(signing=True)
        erc20 = _token(session, token)
        units = erc20.parse(amount)
        held = erc20.balance(session.transport(), client.account)
        if held < units:
            raise BalanceTooLow(
                f"{client.account} holds {erc20.show(held)} (token {erc20.address}); "
                f"depositing {erc20.show(units)} needs more. Get tokens first, or deposit less"
            )
        outcome = client.deposit_erc20(erc20.address, units)
        _show(outcome, hint=f"deposited {erc20.show(units)}")


def _check_in_app(session: Session, asset: Asset, units: int) -> None:
    """Refuse before sending when the in-app balance is short (the DApp would reject it)."""
    balances = session.client().ask(queries.BALANCES, address=session.require_address())
    held = balances["ether"] if asset.is_ether else balances["erc20"].get(asset.address, "0")
    if int(held) < units:
        raise InsufficientBalance(
            f"your balance in the application is {asset.show(held)}; withdrawing "
            f"{asset.show(units)} needs more (see `deml rewards`)"
        )


_EXECUTE_HINT = "execute the voucher with `deml execute --wait` (it waits for its epoch's claim)"


@withdraw_app.command("ether")
def withdraw_ether(amount: Amount) -> None:
    """Withdraw ether: the DApp emits a voucher that pays you.

    Execute it with `deml execute --wait`.
    """
    with reporting_errors():
        session = current().session()
        ether = asset_of(session.transport(), ZERO_ADDRESS)
        wei = ether.parse(amount)
        _check_in_app(session, ether, wei)
        _show(session.client(signing=True).withdraw_ether(wei), hint=_EXECUTE_HINT)


@withdraw_app.command("erc20")
def withdraw_erc20(token: Token, amount: Amount) -> None:
    """Withdraw ERC-20 tokens: the DApp emits a voucher that pays you.

    Execute it with `deml execute --wait`.
    """
    with reporting_errors():
        session = current().session()
        erc20 = _token(session, token)
        units = erc20.parse(amount)
        _check_in_app(session, erc20, units)
        client = session.client(signing=True)
        _show(client.withdraw_erc20(erc20.address, units), hint=_EXECUTE_HINT)


@app.command("inspect", rich_help_panel=ANYONE)
def inspect(
    path: Annotated[
        str, typer.Argument(metavar="PATH", help="An inspect path: `jobs`, `jobs/1`, ...")
    ],
) -> None:
    """Ask the DApp a question and print its JSON reply.

    Every path is in docs/protocol.md §5 (`jobs`, `jobs/1`, `balances/0x...`). A rejected
    query prints its code and detail (`error[no_such_job]: ...`) and exits 1.
    """
    with reporting_errors():
        outcome = current().session().transport().inspect(path)
        reply = raw_reply(accepted(outcome))
        current().output.result(reply, lambda console: console.print_json(json.dumps(reply)))
