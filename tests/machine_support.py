"""Helpers for tests that drive the DApp through the guest API server.

A ``Driver`` takes any machine with ``advance`` and ``inspect``: an ``InProcessMachine`` (the
DApp in a thread, no HTTP: rule tests) or a ``HostMachine`` (the real ``python -m dapp``
process over HTTP: tests of the loop itself).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from deml_protocol import addresses, queries
from deml_protocol.errors import Rejected
from deml_protocol.queries import Query
from devnet.guest_server import Result

R = TypeVar("R")

APP = "0x" + "ab" * 20
ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
TOKEN = "0x" + "70" * 20


class Machine(Protocol):
    def advance(self, metadata: Mapping[str, Any], payload: bytes) -> Result: ...

    def inspect(self, payload: bytes) -> Result: ...


@dataclass
class Driver:
    """Feeds inputs with increasing index and block time, like a chain would."""

    machine: Machine
    input_index: int = 0
    timestamp: int = 1_700_000_000
    results: list[Result] = field(default_factory=list)
    #: Every advance sent, to replay into a fresh process.
    log: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)

    def send(self, sender: str, payload: bytes, *, advance_time: int = 12) -> Result:
        self.timestamp += advance_time
        meta = {
            "chain_id": 31337,
            "app_contract": APP,
            "msg_sender": sender.lower(),
            "block_number": 100 + self.input_index,
            "block_timestamp": self.timestamp,
            "prev_randao": "0x" + "00" * 32,
            "input_index": self.input_index,
        }
        self.input_index += 1
        self.log.append((meta, payload))
        result = self.machine.advance(meta, payload)
        self.results.append(result)
        return result

    def deposit_ether(self, depositor: str, amount: int, call: bytes = b"") -> Result:
        payload = bytes.fromhex(depositor[2:]) + amount.to_bytes(32, "big") + call
        return self.send(addresses.ETHER_PORTAL, payload)

    def deposit_erc20(self, token: str, depositor: str, amount: int, call: bytes = b"") -> Result:
        payload = (
            bytes.fromhex(token[2:])
            + bytes.fromhex(depositor[2:])
            + amount.to_bytes(32, "big")
            + call
        )
        return self.send(addresses.ERC20_PORTAL, payload)

    def query(self, path: str) -> Any:
        result = self.machine.inspect(path.encode())
        return json.loads(b"".join(result.reports))

    def ask(self, query: Query[R], **params: object) -> R:
        """A declared query, its reply decoded and typed; a rejection raises its error class."""
        result = self.machine.inspect(query.path(**params).encode())
        body = b"".join(result.reports)
        if result.status != "accepted":
            raise Rejected.from_report(json.loads(body))
        return query.decode(body)

    def digest(self) -> str:
        return self.ask(queries.STATE_DIGEST)["state_digest"]


def error_of(result: Result) -> str:
    assert result.status == "rejected", result
    return str(json.loads(result.reports[-1])["error"])
