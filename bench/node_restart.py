"""Restart time of the host-mode node against the number of inputs it has stored, with and
without state snapshots (issue 9 item 5).

Fills a node store with N processed inputs (a deposit, then withdrawals: each accepted one
emits a voucher, every tenth is an overdraft and rejected) by running them through a real
DApp process, then times ``Node.start()`` on that store: a fresh DApp process rebuilt by
replaying every input, or started from the latest snapshot (every 100 inputs) and replaying
the rest. No chain is needed: a start only reads the store.

Measured (2 cores, load average 4 to 5 from other jobs): 199 inputs 1.59 s without snapshots,
0.98 s with; 1,099 inputs 5.44 s / 0.92 s; 3,099 inputs 18.38 s / 2.14 s (99 inputs replayed
after the snapshot in each case, the worst case for a snapshot every 100).

Run: ``.venv/bin/python -m bench.node_restart``
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from eth_abi.abi import encode

from deml_protocol import addresses, inputs
from deml_protocol.abi import keccak256
from devnet.contracts import _EVM_ADVANCE_TYPES, EVM_ADVANCE
from devnet.node import Node, NodeConfig
from devnet.store import Store

ALICE = "0x" + "a1" * 20
APP = "0x" + "ab" * 20
SIZES = (199, 1_099, 3_099)  # the worst case: 99 inputs after the last snapshot
EVERY = 100
RUNS = 3
QUIET = open(os.devnull, "wb")  # noqa: SIM115 (the DApp's log, for the whole run)


def evm_advance(index: int, sender: str, payload: bytes) -> bytes:
    selector = keccak256(EVM_ADVANCE.encode())[:4]
    values = [31337, APP, sender, index + 1, 1_700_000_000 + 12 * index, 0, index, payload]
    return selector + encode([*_EVM_ADVANCE_TYPES, "bytes"], values)


def an_input(index: int) -> bytes:
    if index == 0:
        deposit = bytes.fromhex(ALICE[2:]) + (10**24).to_bytes(32, "big")
        return evm_advance(index, addresses.ETHER_PORTAL, deposit)
    amount = 10**30 if index % 10 == 0 else 1  # every tenth overdraws: rejected
    return evm_advance(index, ALICE, inputs.WITHDRAW_ETHER.encode(amount))


def config(snapshots: Path | None) -> NodeConfig:
    return NodeConfig(
        rpc_url="http://127.0.0.1:9",  # never called: a start reads only the store
        application=APP,
        authority="0x" + "cd" * 20,
        deployment_block=0,
        epoch_length=10,
        claimer=None,
        snapshot_dir=None if snapshots is None else str(snapshots),
        snapshot_every=EVERY,
    )


def filled_store(directory: Path, count: int) -> Path:
    db = directory / "node.sqlite"
    store = Store(db)
    rows = [(i, i + 1, an_input(i), "0x" + "00" * 32) for i in range(count)]
    store.add_inputs(rows, scanned_to=count, scanned_hash="0x" + "00" * 32)
    node = Node(config(directory / "snapshots"), store, dapp_log=QUIET).start()
    node._process_pending()  # writes the snapshots as a running node would
    node.stop()
    store.close()
    return db


def time_start(db: Path, snapshots: Path | None) -> tuple[float, int]:
    times, replayed = [], 0
    for _ in range(RUNS):
        store = Store(db)
        started = time.perf_counter()
        node = Node(config(snapshots), store, dapp_log=QUIET).start()
        times.append(time.perf_counter() - started)
        replayed = node.replayed
        node.stop()
        store.close()
    return statistics.median(times), replayed


def main() -> None:
    print(f"restart = Node.start(): DApp process + replay; snapshot every {EVERY} inputs")
    print(f"{'inputs':>7} | {'no snapshot':>12} {'replayed':>8} | {'snapshot':>9} {'replayed':>8}")
    for count in SIZES:
        with tempfile.TemporaryDirectory(prefix="deml-bench-restart-") as tmp:
            db = filled_store(Path(tmp), count)
            full, full_replayed = time_start(db, None)
            fast, fast_replayed = time_start(db, Path(tmp) / "snapshots")
        print(
            f"{count:>7} | {full:>10.2f} s {full_replayed:>8} | {fast:>7.2f} s {fast_replayed:>8}"
        )


if __name__ == "__main__":
    main()
