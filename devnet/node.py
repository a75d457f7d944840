"""The host-mode node: chain events in, DApp results and claims out.

One :meth:`Node.step`:

1. **scan** — read ``InputAdded`` events for the app from the last scanned block to the chain
   head and store them with the new scanned height, atomically (no input missed or stored
   twice, across restarts too);
2. **process** — feed every unprocessed input, in index order, to the DApp through the guest
   API (:class:`~devnet.host_machine.HostMachine`), and store its status, outputs and reports
   in one SQLite transaction;
3. **claim** — for every finished epoch (fixed windows of ``epoch_length`` blocks) that has
   inputs and no claim yet, submit ``Authority.submitClaim(app, lastBlock, root)`` with the
   cumulative outputs Merkle root after that epoch's inputs.

On start the DApp's state is rebuilt by replaying every processed input into a fresh DApp
process; any difference from what was stored is a :class:`ReplayMismatch`, never ignored.

:meth:`Node.wait_until` lets a caller in the same process (the devnet's tests, the demo) wait
for a condition without sleeping: it is re-checked each time the node stores something.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

import requests
from eth_abi.abi import decode

from deml_protocol.abi import keccak256
from devnet.chain import Chain, ChainError, TransactionReverted
from devnet.contracts import Rollups, decode_evm_advance
from devnet.guest_server import MachineHalted, Result
from devnet.host_machine import HostMachine
from devnet.merkle import OutputsMerkleTree, output_hash
from devnet.store import ClaimRow, InputRow, OutputRow, Store

log = logging.getLogger("devnet.node")

STATUS = {"accepted": "ACCEPTED", "rejected": "REJECTED", "exception": "EXCEPTION"}
CLAIM_SUBMITTED_TOPIC = keccak256(b"ClaimSubmitted(address,address,uint256,bytes32)")
#: The Authority's revert when the epoch is already claimed (by us, just before a crash).
NOT_FIRST_CLAIM = keccak256(b"NotFirstClaim(address,uint256)")[:4]
#: At most this many blocks per eth_getLogs call.
SCAN_CHUNK = 5_000


class ReplayMismatch(RuntimeError):
    """Replaying stored inputs gave other results than stored: the DApp is not deterministic
    (or the database was edited). The node refuses to continue."""


class ClaimMismatch(RuntimeError):
    """The chain already holds a claim for this epoch with a different root."""


class InputGap(ChainError):
    """A scan did not give exactly the next inputs, in order, that the InputBox counts: the
    backend answered from behind (or skipped a log). Nothing is stored; the scan is retried."""


class ReorgDetected(RuntimeError):
    """A block the node already scanned is no longer on the chain. Inputs from it may have
    been processed; the node stops rather than diverge (raise ``confirmations`` past the
    chain's reorg depth, or restart from an empty database to follow the new chain)."""


class NodeStopped(RuntimeError):
    """:meth:`Node.run` ended (stopped, or failed) before the awaited condition held."""


@dataclass(frozen=True, slots=True)
class NodeConfig:
    rpc_url: str
    application: str
    authority: str
    deployment_block: int
    epoch_length: int
    #: Unlocked account owning the Authority; ``None`` runs a reader that never claims.
    claimer: str | None
    name: str = "deml"
    #: Blocks an input must be buried under before it is read. 0 suits the automining devnet
    #: (a block exists only when a transaction is sent, and nothing reorgs it); a public
    #: chain wants its finality depth here.
    confirmations: int = 0


class Node:
    def __init__(
        self,
        config: NodeConfig,
        store: Store,
        *,
        dapp_env: dict[str, str] | None = None,
        dapp_log: IO[bytes] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.chain = Chain(config.rpc_url)
        self.rollups = Rollups(self.chain, {})
        self.tree = OutputsMerkleTree(store.output_hashes())
        self._dapp_env = dapp_env or {}
        self._dapp_log = dapp_log
        self._machine: HostMachine | None = None
        self._lock = threading.Lock()  # one request at a time reaches the machine
        # Notified after every store write (inputs scanned, an input processed, a claim) and
        # when run() ends, so waiters re-check exactly when something changed, never on a timer.
        self._progress = threading.Condition()
        self._changes = 0
        self._ended = False
        self.failure: BaseException | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> Node:
        self._machine = self._new_machine()
        self._replay()
        return self

    def stop(self) -> None:
        if self._machine is not None:
            self._machine.stop()
        self.chain.close()

    def run(self, stop: threading.Event, *, poll_interval_s: float = 0.2) -> None:
        """Step until ``stop``. A chain that does not answer is retried with backoff; anything
        else (a revert, a replay mismatch, a bug) ends the run by raising."""
        backoff = poll_interval_s
        with self._progress:
            self._ended, self.failure = False, None
        try:
            while not stop.is_set():
                try:
                    self.step()
                    backoff = poll_interval_s
                except TransactionReverted:
                    # The chain answered, and refused: retrying cannot change that (a revert
                    # taken for an outage made the node retry a refused claim forever).
                    raise
                except (ChainError, requests.RequestException) as exc:
                    backoff = min(backoff * 2, 10.0)
                    log.warning("chain unavailable (%s); retrying in %.1f s", exc, backoff)
                stop.wait(backoff)
        except BaseException as exc:
            self.failure = exc
            raise
        finally:
            self._changed(ended=True)  # wakes waiters: nothing will change any more

    def step(self) -> None:
        head = self.chain.block_number()
        self._check_no_reorg(head)
        self._scan(head - self.config.confirmations)
        self._process_pending()
        if self.config.claimer is not None:
            self._claim_finished_epochs()

    @property
    def machine(self) -> HostMachine:
        if self._machine is None:
            raise RuntimeError("node not started")
        return self._machine

    def processed_input_count(self) -> int:
        return self.store.count("inputs", where="status != 'NONE'")

    def inspect(self, payload: bytes) -> Result:
        with self._lock:
            return self.machine.inspect(payload)

    def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` is true: it is checked now and after each change the node
        stores, so no change is missed and nothing sleeps. ``condition`` runs with no node lock
        held (it may call the node's API). :class:`NodeStopped` if :meth:`run` ends first."""
        while True:
            with self._progress:
                seen, ended = self._changes, self._ended
            if condition():
                return
            if ended:
                raise NodeStopped(f"the node stopped ({self.failure!r})") from self.failure
            with self._progress:
                while self._changes == seen:
                    self._progress.wait()

    def _changed(self, *, ended: bool = False) -> None:
        with self._progress:
            self._changes += 1
            self._ended = self._ended or ended
            self._progress.notify_all()

    # ---- 1. scan -----------------------------------------------------------------------------
    def _check_no_reorg(self, head: int) -> None:
        """The last block scanned must still be on the chain, with the same hash."""
        scanned, known = self.store.get_meta("scanned_block"), self.store.get_meta("scanned_hash")
        if scanned is None or known is None:
            return
        if head < int(scanned):
            raise ReorgDetected(f"block {scanned} was scanned and the chain is shorter now")
        now = self.chain.get_block(int(scanned)).hash
        if now != known:
            raise ReorgDetected(
                f"block {scanned} was {known} when scanned and is {now} now: the chain "
                "reorganized under inputs this node may have processed"
            )

    def _scan(self, head: int) -> None:
        scanned = self.store.get_meta("scanned_block")
        start = self.config.deployment_block if scanned is None else int(scanned) + 1
        while start <= head:
            end = min(head, start + SCAN_CHUNK - 1)
            found = self.rollups.input_added_logs(
                self.config.application, from_block=start, to_block=end
            )
            self._check_contiguous([e.index for e in found], end)
            rows = [(e.index, e.block_number, e.raw_input, e.tx_hash) for e in found]
            end_hash = self.chain.get_block(end).hash
            self.store.add_inputs(rows, scanned_to=end, scanned_hash=end_hash)
            self._changed()
            start = end + 1

    def _check_contiguous(self, indexes: list[int], end: int) -> None:
        """The logs must be the next inputs, in order, and all the InputBox holds at ``end``:
        a backend a block behind would otherwise make the node skip an input forever."""
        first = self.store.next_input_index()
        expected = list(range(first, first + len(indexes)))
        if indexes != expected:
            raise InputGap(f"expected inputs {expected[:3]}… from the logs, got {indexes[:3]}…")
        on_chain = self.rollups.number_of_inputs(self.config.application, block=end)
        if on_chain != first + len(indexes):
            raise InputGap(
                f"the InputBox holds {on_chain} inputs at block {end}; the logs gave "
                f"{first + len(indexes)}"
            )

    # ---- 2. process ----------------------------------------------------------------------------
    def _process_pending(self) -> None:
        for row in self.store.inputs(where="status = 'NONE'"):
            with self._lock:  # inspects see a state and a processed count that agree
                status, outputs, reports = self._advance(row)
                self.tree.extend(o.hash for o in outputs)
                self.store.record_result(
                    input_index=row.index,
                    status=status,
                    outputs=outputs,
                    reports=reports,
                    outputs_hash=self.tree.root(),
                )
            self._changed()  # outside self._lock: a waiter's condition may inspect
            log.info(
                "input %d: %s, %d outputs, %d reports",
                row.index,
                status,
                len(outputs),
                len(reports),
            )

    def _advance(self, row: InputRow) -> tuple[str, list[OutputRow], list[bytes]]:
        """One input. A DApp that dies is restarted by replay and given the input once more:
        a host-side failure (the process was killed, the host ran out of something) must not
        become a permanent EXCEPTION that a node on another host would not record. Only an
        input that halts a freshly replayed DApp again is EXCEPTION."""
        metadata, payload = decode_evm_advance(row.raw)
        for attempt in (1, 2):
            try:
                result = self.machine.advance(metadata, payload)
                break
            except MachineHalted as exc:
                log.error(
                    "input %d halted the DApp (%s, attempt %d); restarting it by replay",
                    row.index,
                    exc,
                    attempt,
                )
                self._restart_machine()
                if attempt == 2:
                    return "EXCEPTION", [], [str(exc).encode()]
        outputs = [OutputRow(o.index, row.index, o.raw, output_hash(o.raw)) for o in result.outputs]
        return STATUS[result.status], outputs, result.reports

    def _new_machine(self) -> HostMachine:
        # No wall-clock limit on an input: the DApp bounds its own work (the work budget), and
        # a deadline would make a slow host record EXCEPTION where a fast one accepts.
        return HostMachine(env=self._dapp_env, log=self._dapp_log, timeout=None).start()

    def _restart_machine(self) -> None:
        self.machine.stop()
        self._machine = self._new_machine()
        self._replay(check=False)

    def _replay(self, *, check: bool = True) -> None:
        """Rebuild the DApp's state from the stored inputs, checking every result."""
        done = self.store.inputs(where="status != 'NONE'")
        for row in done:
            if row.status == "EXCEPTION":
                continue  # the machine rolled back; the DApp never saw it complete
            metadata, payload = decode_evm_advance(row.raw)
            result = self.machine.advance(metadata, payload)
            if check:
                self._check_replay(row, result)
        if done:
            log.info("replayed %d inputs", len(done))

    def _check_replay(self, row: InputRow, result: Result) -> None:
        stored_outputs = [
            (o.index, o.raw) for o in self.store.outputs(where="input_index = ?", args=(row.index,))
        ]
        stored_reports = [
            r.raw for r in self.store.reports(where="input_index = ?", args=(row.index,))
        ]
        replayed = (
            STATUS[result.status],
            [(o.index, o.raw) for o in result.outputs],
            result.reports,
        )
        if replayed != (row.status, stored_outputs, stored_reports):
            raise ReplayMismatch(
                f"input {row.index}: replay gave {replayed[0]} with {len(replayed[1])} outputs "
                f"and {len(replayed[2])} reports; the store has {row.status}, "
                f"{len(stored_outputs)} outputs, {len(stored_reports)} reports"
            )

    # ---- 3. claim ------------------------------------------------------------------------------
    def _claim_finished_epochs(self) -> None:
        length = self.config.epoch_length
        claimed = {claim.epoch for claim in self.store.claims()}
        scanned = int(self.store.get_meta("scanned_block") or -1)
        for epoch in self.store.input_epochs(length):
            last_block = (epoch + 1) * length - 1
            # An epoch is finished once its last block is scanned (so it is in the past) and
            # all of its inputs are processed.
            if epoch in claimed or last_block > scanned:
                continue
            if self.store.count(
                "inputs", where="status = 'NONE' AND block_number <= ?", args=(last_block,)
            ):
                continue
            self._claim(epoch, last_block)

    def _claim(self, epoch: int, last_block: int) -> None:
        count = self.store.count(
            "outputs",
            where="input_index IN (SELECT idx FROM inputs WHERE block_number <= ?)",
            args=(last_block,),
        )
        root = self.tree.root_at(count)
        assert self.config.claimer is not None
        try:
            receipt = self.rollups.submit_claim(
                self.config.authority,
                self.config.application,
                last_block=last_block,
                root=root,
                sender=self.config.claimer,
            )
            tx_hash = receipt.tx_hash
        except TransactionReverted as exc:
            # By selector, not by name: the node's Chain has no error names registered (only
            # deploy_rollups registers them), so error_name is None here and a name test
            # never matched; the claim a crash left on chain was then never adopted.
            if exc.selector != NOT_FIRST_CLAIM:
                raise
            tx_hash = self._existing_claim(last_block, root)
        self.store.add_claim(ClaimRow(epoch, last_block, root, count, tx_hash))
        self._changed()
        log.info(
            "epoch %d claimed: blocks ..%d, %d outputs, root 0x%s",
            epoch,
            last_block,
            count,
            root.hex(),
        )

    def _existing_claim(self, last_block: int, root: bytes) -> str:
        """A claim we sent before a crash: adopt it if its root is ours, else stop loudly."""
        app_topic = bytes(12) + bytes.fromhex(self.config.application[2:])
        logs = self.chain.get_logs(
            address=self.config.authority,
            topics=[CLAIM_SUBMITTED_TOPIC, None, app_topic],
            from_block=self.config.deployment_block,
            to_block="latest",
        )
        for entry in logs:
            claimed_block, claimed_root = decode(["uint256", "bytes32"], entry.data)
            if claimed_block == last_block:
                if claimed_root != root:
                    raise ClaimMismatch(
                        f"epoch ending at block {last_block} was claimed with "
                        f"root 0x{claimed_root.hex()}, ours is 0x{root.hex()}"
                    )
                return entry.tx_hash
        raise ClaimMismatch(f"NotFirstClaim for block {last_block} but no claim found on chain")
