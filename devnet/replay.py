"""Re-execution by a validator: replay a node's inputs into a fresh DApp and check its record.

A node's record is its SQLite store (``devnet.store``): every input with the status, outputs
and reports the node stored, and the claims it made. :func:`replay` feeds the inputs, in
index order, to a fresh machine (the DApp on the host, or in the riscv64 root under qemu:
``riscv.qemu_machine``) and compares each result with the record, item by item. The outputs
Merkle root after each claimed epoch is then rebuilt from the *replayed* outputs
(``devnet.merkle``) and compared with the claim (the node's own, or the ones on chain), so a
validator needs to trust neither the node's outputs nor its roots.

Inputs can also come from the chain alone (the InputBox history of an application): then only
the roots are compared, against the claims on chain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from eth_abi.abi import decode

from deml_protocol.abi import keccak256
from devnet.chain import Chain
from devnet.contracts import Rollups, decode_evm_advance
from devnet.guest_server import MachineHalted, Result
from devnet.merkle import OutputsMerkleTree, output_hash
from devnet.store import Store

#: ``Result.status`` as a node stores it.
STATUS = {"accepted": "ACCEPTED", "rejected": "REJECTED", "exception": "EXCEPTION"}
CLAIM_SUBMITTED_TOPIC = keccak256(b"ClaimSubmitted(address,address,uint256,bytes32)")


class Machine(Protocol):
    def advance(self, metadata: Mapping[str, Any], payload: bytes) -> Result: ...


@dataclass(frozen=True, slots=True)
class InputResult:
    """What one input gave: the status, outputs (global index, raw bytes) and reports."""

    status: str  # ACCEPTED | REJECTED | EXCEPTION
    outputs: tuple[tuple[int, bytes], ...]
    reports: tuple[bytes, ...]

    @classmethod
    def of(cls, result: Result) -> InputResult:
        return cls(
            STATUS[result.status],
            tuple((o.index, o.raw) for o in result.outputs),
            tuple(result.reports),
        )

    @property
    def items(self) -> int:
        """Output items compared: the status, each output, each report."""
        return 1 + len(self.outputs) + len(self.reports)


@dataclass(frozen=True, slots=True)
class RecordedInput:
    index: int
    block_number: int
    raw: bytes  # the EvmAdvance call data, as the InputBox holds it
    stored: InputResult | None  # None when read from the chain: nothing to compare


@dataclass(frozen=True, slots=True)
class Claim:
    last_block: int
    root: bytes
    where: str  # "store" or the claim's transaction


@dataclass(frozen=True, slots=True)
class Difference:
    input_index: int
    item: str  # "status", "output 7", "report 0", ...
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"input {self.input_index}, {self.item}: stored {self.expected}, got {self.actual}"


@dataclass(frozen=True, slots=True)
class EpochCheck:
    last_block: int
    output_count: int
    replayed_root: bytes
    claimed_root: bytes
    where: str

    @property
    def agrees(self) -> bool:
        return self.replayed_root == self.claimed_root


@dataclass
class ReplayReport:
    inputs: int = 0
    items: int = 0
    differences: list[Difference] = field(default_factory=list)
    epochs: list[EpochCheck] = field(default_factory=list)
    results: list[InputResult] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of each input

    @property
    def agrees(self) -> bool:
        return not self.differences and all(e.agrees for e in self.epochs)


def differences(index: int, expected: InputResult, actual: InputResult) -> list[Difference]:
    """Every item of one input's result that differs, in output order."""
    found = []
    if expected.status != actual.status:
        found.append(Difference(index, "status", expected.status, actual.status))
    found += _items(index, "output", expected.outputs, actual.outputs)
    found += _items(
        index,
        "report",
        tuple(enumerate(expected.reports)),
        tuple(enumerate(actual.reports)),
    )
    return found


def _items(
    index: int,
    kind: str,
    expected: Sequence[tuple[int, bytes]],
    actual: Sequence[tuple[int, bytes]],
) -> list[Difference]:
    found = []
    for position in range(max(len(expected), len(actual))):
        want = expected[position] if position < len(expected) else None
        got = actual[position] if position < len(actual) else None
        if want != got:
            number = (want or got or (position, b""))[0]
            found.append(Difference(index, f"{kind} {number}", _show(want), _show(got)))
    return found


def _show(item: tuple[int, bytes] | None) -> str:
    if item is None:
        return "nothing"
    raw = item[1]
    head = raw[:24].hex() + ("…" if len(raw) > 24 else "")
    return f"{len(raw)} bytes 0x{head} (keccak 0x{keccak256(raw).hex()[:16]}…)"


# ---- where the inputs come from --------------------------------------------------------------
def inputs_from_store(store: Store) -> list[RecordedInput]:
    """Every processed input with what the node stored for it."""
    outputs: dict[int, list[tuple[int, bytes]]] = {}
    for o in store.outputs():
        outputs.setdefault(o.input_index, []).append((o.index, bytes(o.raw)))
    reports: dict[int, list[bytes]] = {}
    for r in store.reports():
        reports.setdefault(r.input_index, []).append(bytes(r.raw))
    return [
        RecordedInput(
            row.index,
            row.block_number,
            bytes(row.raw),
            InputResult(
                row.status,
                tuple(outputs.get(row.index, [])),
                tuple(reports.get(row.index, [])),
            ),
        )
        for row in store.inputs(where="status != 'NONE'")
    ]


def claims_from_store(store: Store) -> list[Claim]:
    return [Claim(c.last_block, bytes(c.root), "store") for c in store.claims()]


def inputs_from_chain(chain: Chain, app: str, *, from_block: int = 0) -> list[RecordedInput]:
    found = Rollups(chain, {}).input_added_logs(app, from_block=from_block)
    return [RecordedInput(e.index, e.block_number, e.raw_input, None) for e in found]


def claims_from_chain(
    chain: Chain, authority: str, app: str, *, from_block: int = 0
) -> list[Claim]:
    """``ClaimSubmitted`` events of ``authority`` for ``app`` (every claim, oldest first)."""
    app_topic = bytes(12) + bytes.fromhex(app[2:])
    logs = chain.get_logs(
        address=authority,
        topics=[CLAIM_SUBMITTED_TOPIC, None, app_topic],
        from_block=from_block,
        to_block="latest",
    )
    claims = []
    for entry in logs:
        last_block, root = decode(["uint256", "bytes32"], entry.data)
        claims.append(Claim(int(last_block), bytes(root), entry.tx_hash))
    return claims


# ---- the replay --------------------------------------------------------------------------------
def replay(
    recorded: Iterable[RecordedInput],
    machine: Machine,
    claims: Sequence[Claim] = (),
    *,
    on_input: Callable[[RecordedInput, InputResult, float], None] | None = None,
) -> ReplayReport:
    """Feed every input to ``machine`` (fresh, started) and compare with the record.

    An input the node recorded as EXCEPTION is skipped, as the node's own replay does: the
    machine rolled back and the DApp never completed it. Differences are all collected; the
    first is the one that matters (everything after it may follow from it).
    """
    report = ReplayReport()
    tree = OutputsMerkleTree()
    blocks: list[tuple[int, int]] = []  # (block number, outputs so far) after each input
    for entry in recorded:
        if entry.stored is not None and entry.stored.status == "EXCEPTION":
            continue
        metadata, payload = decode_evm_advance(entry.raw)
        started = time.monotonic()
        try:
            result = InputResult.of(machine.advance(metadata, payload))
        except MachineHalted as exc:
            result = InputResult("EXCEPTION", (), (str(exc).encode(),))
        elapsed = time.monotonic() - started
        report.inputs += 1
        report.results.append(result)
        report.seconds.append(elapsed)
        if entry.stored is not None:
            report.items += entry.stored.items
            report.differences += differences(entry.index, entry.stored, result)
        tree.extend(output_hash(raw) for _, raw in result.outputs)
        blocks.append((entry.block_number, len(tree)))
        if on_input is not None:
            on_input(entry, result, elapsed)
        if result.status == "EXCEPTION":
            break  # the machine is gone; nothing after this is a fair comparison
    report.epochs = check_claims(tree, blocks, claims)
    return report


def check_claims(
    tree: OutputsMerkleTree, blocks: Sequence[tuple[int, int]], claims: Sequence[Claim]
) -> list[EpochCheck]:
    """Each claim's root against the root of the replayed outputs of every input up to the
    claim's last block (the tree is cumulative: never reset between epochs)."""
    checks = []
    for claim in claims:
        count = max((n for block, n in blocks if block <= claim.last_block), default=0)
        checks.append(
            EpochCheck(claim.last_block, count, tree.root_at(count), claim.root, claim.where)
        )
    return checks


def summary(report: ReplayReport) -> list[str]:
    """What ``python -m devnet replay`` prints."""
    lines = []
    if report.differences:
        first = report.differences[0]
        lines.append(f"FIRST DIFFERENCE: {first}")
        lines.append(
            f"{len(report.differences)} differing items in "
            f"{len({d.input_index for d in report.differences})} of {report.inputs} inputs"
        )
    elif report.items:
        lines.append(f"all {report.inputs} inputs agree ({report.items} output items compared)")
    else:
        lines.append(f"{report.inputs} inputs replayed (no stored outputs to compare)")
    for epoch in report.epochs:
        verdict = "agrees" if epoch.agrees else "DIFFERS"
        lines.append(
            f"epoch ending at block {epoch.last_block}: {epoch.output_count} outputs, replayed "
            f"root 0x{epoch.replayed_root.hex()} {verdict} with the claim ({epoch.where})"
            + ("" if epoch.agrees else f" 0x{epoch.claimed_root.hex()}")
        )
    if not report.epochs:
        lines.append("no claims to compare")
    return lines


def open_store(path: Path) -> Store:
    if not path.is_file():
        raise FileNotFoundError(f"no node database at {path}")
    return Store(path)


# ---- python -m devnet replay ---------------------------------------------------------------------
def run_replay(
    *, db: Path | None, config: Path | None, riscv: bool, dapp_log: Path | None = None
) -> int:
    """Inputs from ``db`` (else the chain named by ``config``); claims from the chain when
    ``config`` is given (else the store's). Exit status 0 only if everything agrees."""
    import json

    info = json.loads(config.read_text()) if config is not None else None
    chain = Chain(info["rpc_url"]) if info is not None else None
    try:
        if db is not None:
            store = open_store(db)
            recorded, claims = inputs_from_store(store), claims_from_store(store)
            store.close()
        elif chain is not None and info is not None:
            recorded, claims = (
                inputs_from_chain(chain, info["application"], from_block=info["deployment_block"]),
                [],
            )
        else:
            raise ValueError("give --db (a node's store) or --config (the chain's inputs)")
        if chain is not None and info is not None:
            claims = claims_from_chain(
                chain, info["authority"], info["application"], from_block=info["deployment_block"]
            )
    finally:
        if chain is not None:
            chain.close()
    where = "the riscv64 root under qemu" if riscv else "a host process"
    source = f"{db}" if db is not None else "the InputBox"
    print(f"replaying {len(recorded)} inputs from {source} into a fresh DApp in {where}")
    with open(dapp_log or "/dev/null", "ab") as log, _machine(riscv, log) as machine:
        report = replay(recorded, machine, claims)
    for line in summary(report):
        print(line)
    return 0 if report.agrees else 1


def _machine(riscv: bool, log: Any) -> Any:
    if riscv:
        from riscv.qemu_machine import QemuMachine
        from riscv.root import ensure_root

        return QemuMachine(ensure_root(), log=log)
    from devnet.host_machine import HostMachine

    return HostMachine(log=log, timeout=None)
