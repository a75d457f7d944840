"""The DeML client SDK: one library for every client of the DApp (the console, `make demo`,
the tests). ``Client(transport, account)`` runs the user flows; a ``Transport`` reaches the
DApp (``machine.MachineTransport``: a simulated chain in front of a DApp process or thread;
``node.NodeTransport``: a real Cartesi node v2 and its EVM chain); ``results`` decodes
notices, vouchers, inspect replies and rejections (typed, ``deml_protocol.errors``).
See frontend-console/README.md, "Client SDK"."""

from .client import Client
from .machine import MachineTransport
from .results import (
    InputOutcome,
    Notice,
    Outcome,
    Output,
    Voucher,
    accepted,
    notice,
    notices,
    rejection,
    reply,
    vouchers,
)
from .transport import Transport

__all__ = [
    "Client",
    "InputOutcome",
    "MachineTransport",
    "Notice",
    "Outcome",
    "Output",
    "Transport",
    "Voucher",
    "accepted",
    "notice",
    "notices",
    "rejection",
    "reply",
    "vouchers",
]
