"""What a handler sees of one input, and what it produces.

Handlers are pure: they read and write ``ctx.state`` (a transaction) and append outputs and
reports here. Only ``dapp.rollup`` turns these into HTTP calls, and only once the input is
accepted: outputs of a rejected input are never emitted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .records import Amount
from .state import State


@dataclass(frozen=True, slots=True)
class Metadata:
    """v2 ``EvmAdvance`` metadata as the guest API delivers it (addresses lowercase)."""

    chain_id: int
    app_contract: str
    msg_sender: str
    block_number: int
    block_timestamp: int
    prev_randao: str
    input_index: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Metadata:
        return cls(
            chain_id=int(data["chain_id"]),
            app_contract=str(data["app_contract"]).lower(),
            msg_sender=str(data["msg_sender"]).lower(),
            block_number=int(data["block_number"]),
            block_timestamp=int(data["block_timestamp"]),
            prev_randao=str(data["prev_randao"]),
            input_index=int(data["input_index"]),
        )


@dataclass(frozen=True, slots=True)
class Notice:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Voucher:
    destination: str
    value: int
    payload: bytes


Output = Notice | Voucher


@dataclass(frozen=True, slots=True)
class Deposit:
    """Assets a portal just credited to ``depositor`` in this same input."""

    asset: str
    depositor: str
    amount: Amount


@dataclass(slots=True)
class Context:
    state: State
    meta: Metadata
    config: Config
    #: Who is calling: ``msg_sender``, or the depositor for a call inside a deposit.
    sender: str
    deposit: Deposit | None = None
    #: Compiled scorers by job graph CID (dapp.scoring): a cache, not state.
    scorers: dict[str, Any] = field(default_factory=dict)
    outputs: list[Output] = field(default_factory=list)
    reports: list[bytes] = field(default_factory=list)

    def notice(self, payload: bytes) -> None:
        self.outputs.append(Notice(payload))

    def voucher(self, destination: str, value: int, payload: bytes) -> None:
        self.outputs.append(Voucher(destination, value, payload))

    def report_json(self, body: Any) -> None:
        self.reports.append(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
