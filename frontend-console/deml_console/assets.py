"""Ether and ERC-20 tokens as the console shows and reads them: one :class:`Asset` (address,
symbol, decimals) for every amount a command prints (``1.5 ETH``, ``90 DEML``: exact, from
integers) or parses (``1.5``, ``1500wei``), and for a wallet's balance before it spends."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError

from deml_protocol.addresses import ZERO_ADDRESS

from .calls import format_units, parse_amount
from .sdk.node import NodeTransport
from .sdk.results import Voucher

__all__ = [
    "Asset",
    "BadToken",
    "BalanceTooLow",
    "asset_of",
    "assets_of",
    "describe_voucher",
    "token_address",
]

#: The ERC-20 views read here (balance, and decimals and symbol for amounts).
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


class BalanceTooLow(ValueError):
    """The wallet (or the balance in the application) holds less than the command spends."""

    code: ClassVar[str] = "balance_too_low"


class BadToken(ValueError):
    code: ClassVar[str] = "bad_token"


@dataclass(frozen=True, slots=True)
class Asset:
    address: str  # lowercase; the zero address for ether
    symbol: str
    decimals: int

    @property
    def is_ether(self) -> bool:
        return int(self.address, 16) == 0

    def show(self, amount: int | str) -> str:
        """Base units as people read them: ``1.5 ETH`` (exact: no float)."""
        return f"{format_units(int(amount), decimals=self.decimals)} {self.symbol}"

    def parse(self, amount: str) -> int:
        """``1.5`` (whole units) or ``1500wei`` (base units) -> base units; BadCall if not."""
        return parse_amount(amount, decimals=self.decimals)

    def view(self) -> dict[str, Any]:
        """What views and ``--json`` show of it."""
        return {"address": self.address, "symbol": self.symbol, "decimals": self.decimals}

    def balance(self, transport: NodeTransport, owner: str) -> int:
        """What ``owner``'s wallet holds on the base layer."""
        who = Web3.to_checksum_address(owner)
        if self.is_ether:
            return int(transport.web3.eth.get_balance(who))
        return int(_erc20(transport, self.address).balanceOf(who).call())


def _erc20(transport: NodeTransport, token: str) -> Any:
    contract = transport.web3.eth.contract(Web3.to_checksum_address(token), abi=_ERC20_ABI)
    return contract.functions


def asset_of(transport: NodeTransport, address: str, *, is_strict: bool = False) -> Asset:
    """The asset at ``address`` (zero: ether). A contract without ``decimals()`` is shown in
    base units, or refused with ``BadToken`` when ``is_strict`` (about to spend it)."""
    if int(address, 16) == 0:
        return Asset(ZERO_ADDRESS, "ETH", 18)
    token = _erc20(transport, address)
    try:
        decimals = int(token.decimals().call())
    except (BadFunctionCallOutput, ContractLogicError) as exc:
        if is_strict:
            raise BadToken(f"{address} is not an ERC-20 on this chain (no decimals())") from exc
        return Asset(address.lower(), address[:10], 0)
    try:
        symbol = str(token.symbol().call())
    except (BadFunctionCallOutput, ContractLogicError):  # symbol() is optional in ERC-20
        symbol = address[:10]
    return Asset(address.lower(), symbol, decimals)


def token_address(token: str, *, devnet_token: str | None) -> str:
    """TOKEN as a command takes it: an address, or ``devnet`` for the devnet's reward token."""
    if token.lower() == "devnet":
        if not devnet_token:
            raise BadToken("no devnet reward token in the settings: give the token's address")
        token = devnet_token
    if not Web3.is_address(token):
        raise BadToken(f"{token!r} is not an address (0x and 40 hex digits) or `devnet`")
    return str(Web3.to_checksum_address(token))


def assets_of(transport: NodeTransport) -> Callable[[str], Asset]:
    """:func:`asset_of`, asking the chain once per address (for one command)."""
    return functools.cache(lambda address: asset_of(transport, address))


def describe_voucher(voucher: Voucher, assets: Callable[[str], Asset]) -> str:
    """What a voucher pays, for people: ``pays 0.5 ETH (500000000000000000 wei) to 0x...``,
    ``pays 90 DEML (token 0x...) to 0x...``."""
    transfer = voucher.erc20_transfer()
    if transfer is not None:
        to, amount = transfer
        token = assets(voucher.destination)
        return f"pays {token.show(amount)} (token {voucher.destination}) to {to}"
    ether = assets(ZERO_ADDRESS)
    return f"pays {ether.show(voucher.value)} ({voucher.value} wei) to {voucher.destination}"
