"""Balances from portal deposits, internal transfers, and withdrawals by voucher.

Amounts are integers in base units (wei, token units) and never leave uint256. Portal
payloads are ``abi.encodePacked`` (fact sheet §2.3):

- EtherPortal:  sender(20) ‖ value(32) ‖ execLayerData
- ERC20Portal:  token(20) ‖ sender(20) ‖ value(32) ‖ execLayerData
"""

from __future__ import annotations

from dataclasses import dataclass

from deml_protocol import addresses
from deml_protocol.abi import method
from deml_protocol.errors import BadArgument, InsufficientBalance, MalformedDeposit

from .context import Context, Deposit
from .records import Amount
from .state import State

UINT256_MAX = 2**256 - 1
ERC20_TRANSFER = method("transfer", ("to", "address"), ("amount", "uint256"))


@dataclass(frozen=True, slots=True)
class PortalDeposit:
    deposit: Deposit
    exec_layer_data: bytes


def decode_ether_deposit(payload: bytes) -> PortalDeposit:
    if len(payload) < 52:
        raise MalformedDeposit(f"EtherPortal payload is {len(payload)} bytes; at least 52 needed")
    depositor = "0x" + payload[:20].hex()
    amount = Amount(int.from_bytes(payload[20:52], "big"))
    return PortalDeposit(Deposit(addresses.ETHER, depositor, amount), payload[52:])


def decode_erc20_deposit(payload: bytes) -> PortalDeposit:
    if len(payload) < 72:
        raise MalformedDeposit(f"ERC20Portal payload is {len(payload)} bytes; at least 72 needed")
    token = "0x" + payload[:20].hex()
    depositor = "0x" + payload[20:40].hex()
    amount = Amount(int.from_bytes(payload[40:72], "big"))
    return PortalDeposit(Deposit(token, depositor, amount), payload[72:])


def balance_of(state: State, asset: str, owner: str) -> Amount:
    return state.balances.get((asset, owner), Amount(0))


def credit(state: State, asset: str, owner: str, amount: Amount) -> None:
    total = Amount(balance_of(state, asset, owner) + amount)
    if total > UINT256_MAX:
        raise BadArgument(f"balance of {owner} in {asset} would exceed uint256")
    state.balances[(asset, owner)] = total


def debit(state: State, asset: str, owner: str, amount: Amount) -> None:
    have = balance_of(state, asset, owner)
    if amount > have:
        raise InsufficientBalance(
            f"{owner} has {have} of {asset_name(asset)} and asked for {amount}"
        )
    if amount == have:
        state.balances.pop((asset, owner), None)  # no zero rows: the digest stays canonical
    else:
        state.balances[(asset, owner)] = Amount(have - amount)


def asset_name(asset: str) -> str:
    return "ether" if asset == addresses.ETHER else f"token {asset}"


def handle_withdraw_ether(ctx: Context, *, amount: int) -> None:
    _check_positive(amount)
    debit(ctx.state, addresses.ETHER, ctx.sender, Amount(amount))
    ctx.voucher(ctx.sender, amount, b"")


def handle_withdraw_erc20(ctx: Context, *, token: str, amount: int) -> None:
    _check_positive(amount)
    token = token.lower()
    if token == addresses.ETHER:
        raise BadArgument("the zero address is not a token; use withdrawEther for ether")
    debit(ctx.state, token, ctx.sender, Amount(amount))
    ctx.voucher(token, 0, ERC20_TRANSFER.encode(ctx.sender, amount))


def pay(ctx: Context, asset: str, recipient: str, amount: Amount) -> None:
    """Send ``amount`` straight out of the app by voucher (money already held in escrow)."""
    if asset == addresses.ETHER:
        ctx.voucher(recipient, amount, b"")
    else:
        ctx.voucher(asset, 0, ERC20_TRANSFER.encode(recipient, amount))


def _check_positive(amount: int) -> None:
    if amount <= 0:
        raise BadArgument(f"amount must be positive, got {amount}")
