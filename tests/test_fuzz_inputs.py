"""Random well-typed and mangled calls never hit a bug, and rejected ones change nothing.

In-process (``dapp.app.DApp``, no HTTP) so thousands of inputs run in seconds; the seed is
fixed, so a failure reproduces.
"""

from __future__ import annotations

import random
from typing import Any

from dapp.app import DApp
from dapp.context import Metadata
from deml_protocol import addresses, inputs

CIDS = [
    "",
    "x",
    "\u00b2",
    "Qm" + "1" * 44,
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
]
WORDS = ["accuracy", "log_loss", "a" * 300]


def random_value(rng: random.Random, abi_type: str) -> Any:
    if abi_type.endswith("[]"):
        return [random_value(rng, abi_type[:-2]) for _ in range(rng.randint(0, 3))]
    if abi_type.startswith("uint"):
        top = 2 ** int(abi_type[4:] or 256) - 1
        return rng.choice([0, 1, 2, min(10**18, top), top, rng.randint(0, min(1000, top))])
    if abi_type == "address":
        return rng.choice(["0x" + "00" * 20, "0x" + "a1" * 20, addresses.ETHER_PORTAL])
    if abi_type == "bytes32":
        return rng.choice([bytes(32), rng.randbytes(32)])
    if abi_type == "bytes":
        return rng.randbytes(rng.randint(0, 100))
    return rng.choice(CIDS + WORDS)


def random_payload(rng: random.Random) -> tuple[str, bytes]:
    method = rng.choice(inputs.ALL_INPUTS)
    payload = method.encode(*[random_value(rng, t) for t in method.types])
    if rng.random() < 0.2:  # mangled: cut short, then junk appended
        payload = payload[: rng.randint(0, len(payload))] + rng.randbytes(rng.randint(0, 8))
    sender = rng.choice(["0x" + "a1" * 20, "0x" + "b0" * 20])
    if rng.random() < 0.1:  # the same call inside an ether deposit
        amount = rng.randint(0, 10**20).to_bytes(32, "big")
        sender, payload = addresses.ETHER_PORTAL, bytes.fromhex("a1" * 20) + amount + payload
    return sender, payload


def test_random_inputs_are_handled_without_bugs() -> None:
    rng, dapp = random.Random(20261124), DApp()
    for index in range(2000):
        sender, payload = random_payload(rng)
        before = dapp.state.digest()
        meta = Metadata(
            31337,
            "0x" + "ab" * 20,
            sender,
            index,
            1_700_000_000 + 10 * index,
            "0x" + "00" * 32,
            index,
        )
        result = dapp.advance(meta, payload)
        assert not any(b"internal_error" in report for report in result.reports), (
            index,
            payload.hex()[:80],
            result.reports,
        )
        if result.accepted:
            dapp.discard()  # as when the guest API refuses an output: nothing stays
            assert dapp.state.digest() == before, index
            result = dapp.advance(meta, payload)  # the same input again, the same outcome
            assert result.accepted, (index, result.reports)
            dapp.commit()
        else:
            assert dapp.state.digest() == before, index  # a rejection changes nothing


def test_odd_inspect_paths_are_named_errors() -> None:
    dapp = DApp()
    for path in [
        b"jobs",
        b"jobs/1",
        b"jobs/x",
        b"jobs/1/rounds/0",
        b"jobs/1/leaderboard",
        b"models/1/latest",
        b"blobs/x",
        b"blobs/Qm/data/0",
        b"uploads/x",
        b"",
        b"/",
        b"\xff",
        b"balances/",
        b"state/digest",
    ]:
        ok, reports = dapp.inspect(path)
        assert not any(b"internal_error" in report for report in reports), path
