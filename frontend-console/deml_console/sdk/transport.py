"""How the client reaches a DApp: send an input as someone, deposit through a portal, inspect.

Three transports implement it:

- :class:`~deml_console.sdk.machine.MachineTransport`: a DApp behind the guest API with a
  simulated chain: ``devnet.in_process.InProcessMachine`` (the DApp in this process) or
  ``devnet.host_machine.HostMachine`` (the real ``python -m dapp`` behind the guest API
  server). It takes any object with ``advance(metadata, payload)`` and ``inspect(payload)``,
  so this package never imports ``devnet`` or ``dapp`` and installs on its own;
- :class:`~deml_console.sdk.node.NodeTransport`: a real Cartesi node v2 and its EVM chain:
  inputs are signed transactions to the InputBox and the portals, outcomes are read back over
  the node's JSON-RPC, inspects go to ``POST <node>/inspect/<app>``.

``advance_time`` is seconds of block time to let pass before the input: the simulated chain
moves its clock; a node transport on a development chain (anvil) warps the chain's clock;
a real chain cannot, and its transport ignores it (wait for the window instead).
"""

from __future__ import annotations

from typing import Protocol

from .results import Outcome

#: Seconds between two inputs on a simulated chain when nobody says otherwise (one block).
BLOCK_SECONDS = 12


class Transport(Protocol):
    def send(self, sender: str, payload: bytes, *, advance_time: int = BLOCK_SECONDS) -> Outcome:
        """An input from ``sender`` (through the InputBox), once the DApp has processed it."""
        ...

    def deposit_ether(self, depositor: str, amount: int, call: bytes = b"") -> Outcome:
        """Ether through the EtherPortal; ``call`` (an input) runs for the depositor."""
        ...

    def deposit_erc20(self, token: str, depositor: str, amount: int, call: bytes = b"") -> Outcome:
        """Tokens through the ERC20Portal (approving it first where that takes a step)."""
        ...

    def inspect(self, path: str) -> Outcome:
        """An inspect query (a path, ``deml_protocol.queries``); the reply is in the reports."""
        ...
