"""What happened to a job, read back from the node: each closed round's ``RoundClosed`` notice
(scores, who was paid how much, the refund), the chain's clock, and the job's asset for people
(symbol, decimals)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from web3 import Web3

from deml_protocol.addresses import ZERO_ADDRESS

from .phases import Clock, chain_clock
from .sdk.node import NodeTransport
from .sdk.results import InputOutcome, Output, notices

__all__ = [
    "Asset",
    "BalanceTooLow",
    "asset_of",
    "clock_of",
    "closed_rounds",
    "payouts_by_client",
    "round_results",
]

_PAGE = 1000
_ERC20_ABI = [
    {
        "name": name,
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "who", "type": "address"}] if name == "balanceOf" else [],
        "outputs": [{"name": "", "type": "string" if name == "symbol" else "uint256"}],
    }
    for name in ("balanceOf", "decimals", "symbol")
]


class BalanceTooLow(ValueError):
    """The account does not hold what a deposit needs."""

    code: ClassVar[str] = "balance_too_low"


@dataclass(frozen=True, slots=True)
class Asset:
    address: str  # the zero address for ether
    symbol: str
    decimals: int

    def show(self, amount: int | str) -> str:
        value = Decimal(int(amount)) / (Decimal(10) ** self.decimals)
        return f"{value.normalize():f} {self.symbol}"

    def view(self) -> dict[str, Any]:
        """What views and ``--json`` show of it."""
        return {"address": self.address, "symbol": self.symbol, "decimals": self.decimals}

    def parse(self, amount: str) -> int:
        """``"1.5"`` in whole units -> base units (exact; no float)."""
        return int(Decimal(amount) * (Decimal(10) ** self.decimals))

    def balance(self, transport: NodeTransport, owner: str) -> int:
        who = Web3.to_checksum_address(owner)
        if self.address == ZERO_ADDRESS:
            return int(transport.web3.eth.get_balance(who))
        return int(_erc20(transport, self.address).balanceOf(who).call())


def _erc20(transport: NodeTransport, token: str) -> Any:
    contract = transport.web3.eth.contract(Web3.to_checksum_address(token), abi=_ERC20_ABI)
    return contract.functions


def asset_of(transport: NodeTransport, address: str) -> Asset:
    if int(address, 16) == 0:
        return Asset(ZERO_ADDRESS, "ETH", 18)
    token = _erc20(transport, address)
    try:
        return Asset(address.lower(), str(token.symbol().call()), int(token.decimals().call()))
    except Exception:  # noqa: BLE001  (not an ERC-20 with metadata: show base units)
        return Asset(address.lower(), address[:10], 0)


def clock_of(transport: NodeTransport) -> Clock:
    return chain_clock(lambda: int(transport.web3.eth.get_block("latest")["timestamp"]))


def closed_rounds(transport: NodeTransport) -> list[dict[str, Any]]:
    """Every ``RoundClosed`` notice's fields (all jobs), in output order, from the node."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = transport.rpc(
            "cartesi_listOutputs", application=transport.app, limit=_PAGE, offset=offset
        )["data"]
        outputs = [Output(int(o["index"], 16), bytes.fromhex(o["raw_data"][2:])) for o in page]
        found += [
            n.fields for n in notices(InputOutcome("accepted", outputs)) if n.name == "RoundClosed"
        ]
        if len(page) < _PAGE:
            return found
        offset += _PAGE


def round_results(transport: NodeTransport, job_id: int) -> dict[int, dict[str, Any]]:
    """Each closed round's ``RoundClosed`` fields, by round."""
    return {
        int(fields["round"]): fields
        for fields in closed_rounds(transport)
        if int(fields["jobId"]) == job_id
    }


def payouts_by_client(results: dict[int, dict[str, Any]]) -> dict[str, int]:
    """What each address was paid over the job's rounds (the sponsor's refunds apart)."""
    paid: dict[str, int] = defaultdict(int)
    for fields in results.values():
        for who, amount in zip(fields["paid"], fields["amounts"], strict=True):
            paid[str(who).lower()] += int(amount)
    return dict(paid)
