"""Helpers for tests that drive the DApp through the guest API server.

A ``Driver`` takes any machine with ``advance`` and ``inspect``: an ``InProcessMachine`` (the
DApp in a thread, no HTTP: rule tests) or a ``HostMachine`` (the real ``python -m dapp``
process over HTTP: tests of the loop itself).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from deml_console.sdk.machine import APP, MachineTransport
from deml_console.sdk.machine import Machine as SdkMachine
from deml_console.sdk.results import raw_reply, reply
from deml_protocol import queries
from deml_protocol.queries import Query
from devnet.guest_server import Result

R = TypeVar("R")
__all__ = ["ALICE", "APP", "BOB", "TOKEN", "Driver", "Machine", "error_of"]

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
TOKEN = "0x" + "70" * 20


#: Anything with ``advance`` and ``inspect`` in the guest server's Result shape.
Machine = SdkMachine[Result]


class Driver(MachineTransport[Result]):
    """The SDK's simulated chain over a machine, plus what tests read: raw replies, digests."""

    def query(self, path: str) -> Any:
        return raw_reply(self.inspect(path))

    def ask(self, query: Query[R], **params: object) -> R:
        """A declared query, its reply decoded and typed; a rejection raises its error class."""
        return reply(self.inspect(query.path(**params)), query)

    def digest(self) -> str:
        return self.ask(queries.STATE_DIGEST)["state_digest"]


def error_of(result: Result) -> str:
    assert result.status == "rejected", result
    return str(json.loads(result.reports[-1])["error"])
