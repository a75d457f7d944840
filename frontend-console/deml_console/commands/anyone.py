"""What anyone can do: ``deml send``, ``deml deposit``, ``deml withdraw``, ``deml inspect``.

Outputs, execution and verification (``deml outputs``, ``deml execute``, ``deml verify``) are
in :mod:`deml_console.commands.settle`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

import typer
from rich.console import Console
from rich.markup import escape
from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from deml_protocol import queries
from deml_protocol.errors import InsufficientBalance

from ..calls import format_units, parse_amount, payload_from_args
from ..cli import ANYONE, app, current, reporting_errors
from ..node_outputs import jsonable
from ..sdk.results import Outcome, accepted, notices, raw_reply, rejection, vouchers
from ..session import Session

deposit_app = typer.Typer(help="Put ether or ERC-20 tokens into the application (portals).")
withdraw_app = typer.Typer(help="Take ether or tokens out of the application (a voucher).")
app.add_typer(deposit_app, name="deposit", rich_help_panel=ANYONE)
app.add_typer(withdraw_app, name="withdraw", rich_help_panel=ANYONE)

#: The ERC-20 views read before a deposit (balance, decimals for amounts).
_ERC20_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": name,
        "stateMutability": "view",
        "inputs": inputs,
        "outputs": [{"name": "", "type": kind}],
    }
    for name, inputs, kind in (
        ("balanceOf", [{"name": "owner", "type": "address"}], "uint256"),
        ("decimals", [], "uint8"),
        ("symbol", [], "string"),
    )
]

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


class BalanceTooLow(ValueError):
    """The wallet holds less than the command would spend."""

    code: ClassVar[str] = "balance_too_low"


def outcome_data(outcome: Outcome) -> dict[str, Any]:
    """An input's outcome as plain data: status, decoded notices and vouchers, reports."""
    return {
        "input_index": getattr(outcome, "input_index", None),
        "status": outcome.status,
        "notices": [
            {"index": n.index, "name": n.name, "fields": jsonable(n.fields)}
            for n in notices(outcome)
        ],
        "vouchers": [_voucher_data(v) for v in vouchers(outcome)],
        "reports": [_report_text(r) for r in outcome.reports],
    }


def _voucher_data(voucher: Any) -> dict[str, Any]:
    data = {
        "index": voucher.index,
        "destination": voucher.destination,
        "value": str(voucher.value),
        "payload": "0x" + voucher.payload.hex(),
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
            console.print(f"  notice {n['index']} {n['name']}: {escape(fields)}")
        for v in data["vouchers"]:
            if "erc20_transfer" in v:
                what = v["erc20_transfer"]
                paid = f"{what['amount']} of token {v['destination']} to {what['to']}"
            else:
                paid = f"{format_units(int(v['value']))} ETH to {v['destination']}"
            console.print(f"  voucher {v['index']}: pays {paid}")
        for r in data["reports"]:
            console.print(f"  report: {escape(r)}")

    return render


def _show(outcome: Outcome, *, hint: str | None = None) -> None:
    out = current().output
    data = outcome_data(accepted(outcome))
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
        wei = parse_amount(amount)
        session = current().session()
        client = session.client(signing=True)
        held = session.transport().web3.eth.get_balance(Web3.to_checksum_address(client.account))
        if held <= wei:
            raise BalanceTooLow(
                f"{client.account} holds {format_units(held)} ETH; depositing {amount} ETH "
                "needs that much plus gas. Fund the account, or deposit less"
            )
        _show(client.deposit_ether(wei), hint=f"deposited {format_units(wei)} ETH")


class BadToken(ValueError):
    code: ClassVar[str] = "bad_token"


@dataclass(frozen=True)
class Erc20:
    address: Any  # a checksum address
    contract: Any
    decimals: int

    def units(self, amount: str) -> int:
        return parse_amount(amount, decimals=self.decimals)

    def shown(self, units: int) -> str:
        return f"{format_units(units, decimals=self.decimals)} of token {self.address}"


def _erc20(session: Session, token: str) -> Erc20:
    """TOKEN (an address, or ``devnet``: the devnet's reward token), checked on chain."""
    if token.lower() == "devnet":
        if not session.settings.reward_token:
            raise BadToken("no devnet reward token in the settings: give the token's address")
        token = session.settings.reward_token
    if not Web3.is_address(token):
        raise BadToken(f"{token!r} is not an address (0x and 40 hex digits) or `devnet`")
    address = Web3.to_checksum_address(token)
    contract = session.transport().web3.eth.contract(address=address, abi=_ERC20_ABI)
    try:
        decimals = int(contract.functions.decimals().call())
    except (BadFunctionCallOutput, ContractLogicError) as exc:
        raise BadToken(f"{address} is not an ERC-20 on this chain (no decimals())") from exc
    return Erc20(address, contract, decimals)


@deposit_app.command("erc20")
def deposit_erc20(token: Token, amount: Amount) -> None:
    """Deposit ERC-20 tokens into your balance in the application.

    Through the ERC20Portal, approved first for what the allowance lacks; your wallet's
    balance is checked first.
    """
    with reporting_errors():
        session = current().session()
        client = session.client(signing=True)
        erc20 = _erc20(session, token)
        units = erc20.units(amount)
        owner = Web3.to_checksum_address(client.account)
        held = int(erc20.contract.functions.balanceOf(owner).call())
        if held < units:
            raise BalanceTooLow(
                f"{client.account} holds {erc20.shown(held)}; depositing {amount} needs more. "
                "Get tokens first, or deposit less"
            )
        outcome = client.deposit_erc20(erc20.address, units)
        _show(outcome, hint=f"deposited {erc20.shown(units)}")


def _check_in_app(session: Session, asset: str, units: int) -> None:
    """Refuse before sending when the in-app balance is short (the DApp would reject it)."""
    balances = session.client().ask(queries.BALANCES, address=session.require_address())
    held = int(balances["ether"] if asset == "ether" else balances["erc20"].get(asset, "0"))
    if held < units:
        raise InsufficientBalance(
            f"your balance in the application is {held} base units of {asset}; "
            f"withdrawing {units} needs more (see `deml inspect balances/<address>`)"
        )


_EXECUTE_HINT = "execute the voucher with `deml execute --wait` (it waits for its epoch's claim)"


@withdraw_app.command("ether")
def withdraw_ether(amount: Amount) -> None:
    """Withdraw ether: the DApp emits a voucher that pays you.

    Execute it with `deml execute --wait`.
    """
    with reporting_errors():
        wei = parse_amount(amount)
        session = current().session()
        _check_in_app(session, "ether", wei)
        _show(session.client(signing=True).withdraw_ether(wei), hint=_EXECUTE_HINT)


@withdraw_app.command("erc20")
def withdraw_erc20(token: Token, amount: Amount) -> None:
    """Withdraw ERC-20 tokens: the DApp emits a voucher that pays you.

    Execute it with `deml execute --wait`.
    """
    with reporting_errors():
        session = current().session()
        erc20 = _erc20(session, token)
        units = erc20.units(amount)
        _check_in_app(session, str(erc20.address).lower(), units)
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
