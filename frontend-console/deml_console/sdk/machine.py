"""The transport for a DApp behind the guest API with a simulated chain: inputs get increasing
indices and block times, deposits are built as the portals build them.

``machine`` is anything with ``advance(metadata, payload)`` and ``inspect(payload)`` returning
the guest server's ``Result`` shape (``devnet.in_process.InProcessMachine``,
``devnet.host_machine.HostMachine``); the transport only needs that shape, so the devnet stays
out of this package's imports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from deml_protocol import addresses

from .results import Outcome
from .transport import BLOCK_SECONDS

R_co = TypeVar("R_co", bound=Outcome, covariant=True)
R = TypeVar("R", bound=Outcome)

#: The metadata a simulated chain puts on every input (the devnet's anvil chain id).
CHAIN_ID = 31337
APP = "0x" + "ab" * 20


class Machine(Protocol[R_co]):
    def advance(self, metadata: Mapping[str, Any], payload: bytes) -> R_co: ...

    def inspect(self, payload: bytes) -> R_co: ...


@dataclass
class MachineTransport(Generic[R]):
    """Feeds inputs with increasing index and block time, like a chain would."""

    machine: Machine[R]
    input_index: int = 0
    timestamp: int = 1_700_000_000
    app: str = APP
    results: list[R] = field(default_factory=list)
    #: Every advance sent, to replay into a fresh machine.
    log: list[tuple[dict[str, Any], bytes]] = field(default_factory=list)

    def send(self, sender: str, payload: bytes, *, advance_time: int = BLOCK_SECONDS) -> R:
        self.timestamp += advance_time
        meta = {
            "chain_id": CHAIN_ID,
            "app_contract": self.app,
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

    def deposit_ether(self, depositor: str, amount: int, call: bytes = b"") -> R:
        payload = bytes.fromhex(depositor[2:]) + amount.to_bytes(32, "big") + call
        return self.send(addresses.ETHER_PORTAL, payload)

    def deposit_erc20(self, token: str, depositor: str, amount: int, call: bytes = b"") -> R:
        payload = (
            bytes.fromhex(token[2:])
            + bytes.fromhex(depositor[2:])
            + amount.to_bytes(32, "big")
            + call
        )
        return self.send(addresses.ERC20_PORTAL, payload)

    def inspect(self, path: str) -> R:
        return self.machine.inspect(path.encode())
