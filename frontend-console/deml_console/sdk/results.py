"""What an input or an inspect came back with, and the one place that decodes it: DeML
notices, vouchers (and the ERC-20 transfers they carry), inspect replies, and rejection
reports turned into the typed errors of ``deml_protocol.errors``.

Every transport returns something shaped like the guest API server's ``Result`` (status,
outputs with their index and raw bytes, reports): :class:`Outcome` says exactly that much, so
a ``devnet.guest_server.Result`` is one without this package importing ``devnet``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from eth_abi.abi import decode

from deml_protocol.errors import Rejected
from deml_protocol.notices import decode_notice
from deml_protocol.outputs import decode_output, output_type
from deml_protocol.queries import Query

R = TypeVar("R")

#: ``transfer(address,uint256)``: what the DApp's ERC-20 payout vouchers call.
ERC20_TRANSFER = bytes.fromhex("a9059cbb")


class RawOutput(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def raw(self) -> bytes: ...


class Outcome(Protocol):
    """How an input (or an inspect) ended: "accepted", "rejected" or "exception"."""

    @property
    def status(self) -> str: ...
    @property
    def outputs(self) -> Sequence[RawOutput]: ...
    @property
    def reports(self) -> Sequence[bytes]: ...


@dataclass(frozen=True, slots=True)
class Output:
    index: int
    raw: bytes  # Notice / Voucher call data, as hashed into the outputs Merkle tree


@dataclass(frozen=True, slots=True)
class InputOutcome:
    """An :class:`Outcome` read back from a node (or built by any other transport)."""

    status: str
    outputs: list[Output] = field(default_factory=list)
    reports: list[bytes] = field(default_factory=list)
    input_index: int | None = None


@dataclass(frozen=True, slots=True)
class Notice:
    name: str  # "JobCreated", "RoundClosed", ... (deml_protocol.notices)
    fields: dict[str, Any]
    index: int  # the output's index, for validateOutput


@dataclass(frozen=True, slots=True)
class Voucher:
    index: int  # the output's index, for executeOutput
    destination: str  # lowercase
    value: int  # wei sent with the call
    payload: bytes

    def erc20_transfer(self) -> tuple[str, int] | None:
        """``(recipient, amount)`` if this voucher is an ERC-20 ``transfer``, else None."""
        if self.payload[:4] != ERC20_TRANSFER:
            return None
        recipient, amount = decode(["address", "uint256"], self.payload[4:])
        return str(recipient).lower(), int(amount)


def decoded(output: RawOutput) -> Notice | Voucher | None:
    """One output decoded: a DeML notice (ValueError or KeyError if the payload is not one of
    ``deml_protocol.notices``), a voucher, or None for any other kind of output."""
    kind = output_type(output.raw)
    if kind == "Notice":
        payload = decode_output(output.raw)["payload"]
        assert isinstance(payload, bytes)
        name, fields = decode_notice(payload)
        return Notice(name, fields, output.index)
    if kind == "Voucher":
        got = decode_output(output.raw)
        destination, value, payload = got["destination"], got["value"], got["payload"]
        assert isinstance(destination, str) and isinstance(value, int)
        assert isinstance(payload, bytes)
        return Voucher(output.index, destination.lower(), value, payload)
    return None


def notices(outcome: Outcome) -> list[Notice]:
    """The DeML notices among an outcome's outputs, decoded, in output order."""
    return [n for o in outcome.outputs if isinstance(n := decoded(o), Notice)]


def notice(outcome: Outcome, name: str) -> Notice:
    """The one notice called ``name``; LookupError if the outcome has none."""
    for found in notices(outcome):
        if found.name == name:
            return found
    raise LookupError(f"no {name} notice among {len(outcome.outputs)} outputs")


def vouchers(outcome: Outcome) -> list[Voucher]:
    return [v for o in outcome.outputs if isinstance(v := decoded(o), Voucher)]


def rejection(outcome: Outcome) -> Rejected | None:
    """The typed error of a rejected outcome (from its last report), or None if accepted."""
    if outcome.status == "accepted":
        return None
    if not outcome.reports:
        return Rejected.from_report({"error": "", "detail": f"status {outcome.status}"})
    try:
        report = json.loads(outcome.reports[-1])
    except ValueError:
        report = {"error": "", "detail": outcome.reports[-1][:200].decode(errors="replace")}
    return Rejected.from_report(report if isinstance(report, dict) else {})


def accepted(outcome: Outcome) -> Outcome:
    """``outcome`` itself if accepted; its typed rejection (a ``Rejected``) raised if not."""
    error = rejection(outcome)
    if error is not None:
        raise error
    return outcome


def reply(outcome: Outcome, query: Query[R]) -> R:
    """An inspect reply decoded and typed by its declaration; a rejection raises its error."""
    return query.decode(b"".join(accepted(outcome).reports))


def raw_reply(outcome: Outcome) -> Any:
    """An inspect reply's JSON, whatever it is (a rejection report included)."""
    return json.loads(b"".join(outcome.reports))
