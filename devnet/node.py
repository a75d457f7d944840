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

On start the DApp's state is rebuilt from the latest state snapshot the DApp wrote (if
``NodeConfig.snapshot_dir`` is set and the DApp accepts it: ``dapp.snapshot``) plus a replay
of every processed input after it into a fresh DApp process; any difference from what was
stored is a :class:`ReplayMismatch`, never ignored.

**Reorgs.** Each step first checks that the last scanned block still has the hash it had. If
not, the node finds the last block it knows that the chain kept (``Store.block_hashes``: the
blocks that brought inputs and the last scan end), forgets every input after it with its
outputs, reports, snapshots and the claims of epochs ending after it, rebuilds the DApp from
a snapshot before the first dropped input plus a replay, and scans the new chain from there.
A claim whose transaction left the chain is forgotten too and sent again (see
:meth:`Node._check_claims`). What the node cannot undo is a claim the chain still holds for
an epoch whose inputs changed (the Authority keeps the first claim per epoch): sending the new
root then ends in :class:`ClaimMismatch`.

:meth:`Node.wait_until` lets a caller in the same process (the devnet's tests, the demo) wait
for a condition without sleeping: it is re-checked each time the node stores something.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests
from eth_abi.abi import decode

from dapp.snapshot import EXIT_SNAPSHOT_INVALID, snapshot_paths
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


class ChainMoved(ChainError):
    """The chain changed under a scan (the end block's hash differs before and after reading
    the logs): nothing is stored and the step is retried, then sees the reorg."""


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
    #: Where the DApp writes state snapshots (``dapp.snapshot``); None: no snapshots, a start
    #: replays every input.
    snapshot_dir: str | None = None
    #: A snapshot after every this many inputs (by input index).
    snapshot_every: int = 100
    #: Snapshots kept: older ones let a reorg roll back past the newest.
    snapshots_kept: int = 3
    #: Seconds one JSON-RPC call may take; a slower reply counts as an outage (retried).
    rpc_timeout_s: float = 10.0


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
        self.chain = Chain(config.rpc_url, timeout_s=config.rpc_timeout_s)
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
        #: Steps that failed because the chain did not answer (each retried).
        self.outages = 0
        #: Inputs replayed by the last (re)build of the DApp, and the snapshot it started
        #: from (the input index it was taken after), for logs and tests.
        self.replayed = 0
        self.started_from_snapshot: int | None = None
        #: Claims of epochs up to this one have their transaction in a scanned block.
        self._claims_final = -1

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> Node:
        self._machine = self._rebuild_machine(check=True)
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
                    self.outages += 1
                    self._changed()  # a waiter may be waiting for the node to notice
                stop.wait(backoff)
        except BaseException as exc:
            self.failure = exc
            raise
        finally:
            self._changed(ended=True)  # wakes waiters: nothing will change any more

    def step(self) -> None:
        head = self.chain.block_number()
        kept = self._find_reorg(head)
        if kept is not None:
            self._roll_back(*kept)
        self._check_claims()
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
    def _find_reorg(self, head: int) -> tuple[int, str | None] | None:
        """None while the last scanned block is still on the chain with the hash it had;
        after a reorg, the last known block the chain kept and its hash, or
        ``(deployment_block - 1, None)`` if it kept none of them."""
        scanned, known = self.store.get_meta("scanned_block"), self.store.get_meta("scanned_hash")
        if scanned is None or known is None:
            return None
        if int(scanned) <= head and self.chain.get_block(int(scanned)).hash == known:
            return None
        # A block whose hash is unchanged keeps all of its ancestors: the first match going
        # down is the fork point (the first block that differs is the next one).
        for number, block_hash in self.store.block_hashes(at_most=head):
            if self.chain.get_block(number).hash == block_hash:
                return number, block_hash
        return self.config.deployment_block - 1, None

    def _roll_back(self, block: int, block_hash: str | None) -> None:
        with self._lock:  # no inspect sees a half rolled back state
            dropped = self.store.roll_back_to(block, block_hash)
            self.tree = OutputsMerkleTree(self.store.output_hashes())
            for index in dropped.snapshots:
                self._delete_snapshot_files(index)
            self._claims_final = -1
            log.warning(
                "reorg at block %d: %d inputs dropped%s, %d claims dropped (epochs %s); "
                "rebuilding the DApp and rescanning from block %d",
                block + 1,
                len(dropped.inputs),
                f" ({dropped.inputs[0]}..{dropped.inputs[-1]})" if dropped.inputs else "",
                len(dropped.claims),
                dropped.claims,
                block + 1,
            )
            self.machine.stop()
            self._machine = self._rebuild_machine(check=True)
        self._changed()

    def _scan(self, head: int) -> None:
        scanned = self.store.get_meta("scanned_block")
        start = self.config.deployment_block if scanned is None else int(scanned) + 1
        while start <= head:
            end = min(head, start + SCAN_CHUNK - 1)
            end_hash = self.chain.get_block(end).hash
            found = self.rollups.input_added_logs(
                self.config.application, from_block=start, to_block=end
            )
            self._check_contiguous([e.index for e in found], end)
            if self.chain.get_block(end).hash != end_hash:
                raise ChainMoved(f"block {end} changed while the node read its logs")
            rows = [(e.index, e.block_number, e.raw_input, e.tx_hash) for e in found]
            blocks = sorted({(e.block_number, e.block_hash) for e in found})
            self.store.add_inputs(rows, scanned_to=end, scanned_hash=end_hash, input_blocks=blocks)
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
                if status != "EXCEPTION":
                    self._record_snapshot(row.index)
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

    def _new_machine(self, *, snapshot: tuple[int, str] | None = None) -> HostMachine:
        # No wall-clock limit on an input: the DApp bounds its own work (the work budget), and
        # a deadline would make a slow host record EXCEPTION where a fast one accepts.
        env = dict(self._dapp_env)
        next_output = 0
        if self.config.snapshot_dir is not None:
            env["DEML_SNAPSHOT_DIR"] = self.config.snapshot_dir
            env["DEML_SNAPSHOT_EVERY"] = str(self.config.snapshot_every)
        if snapshot is not None:
            index, digest = snapshot
            env["DEML_SNAPSHOT_LOAD"] = str(self._snapshot_path(index))
            env["DEML_SNAPSHOT_DIGEST"] = digest
            next_output = self.store.count("outputs", where="input_index <= ?", args=(index,))
        machine = HostMachine(
            env=env, log=self._dapp_log, timeout=None, next_output_index=next_output
        )
        return machine.start()

    def _restart_machine(self) -> None:
        self.machine.stop()
        self._machine = self._rebuild_machine(check=False)

    def _rebuild_machine(self, *, check: bool) -> HostMachine:
        """A fresh DApp holding the state after every processed input: started from the
        latest snapshot it accepts (a snapshot it refuses is forgotten, with a log line), then
        the processed inputs after that snapshot replayed, each result checked."""
        done = self.store.inputs(where="status != 'NONE'", descending=True, limit=1)
        last_done = done[0].index if done else -1
        # Snapshots recorded by a run with snapshots on are not used by one with them off.
        known = self.store.snapshots() if self.config.snapshot_dir is not None else []
        for index, digest in known:
            if index > last_done:
                continue
            machine = self._new_machine(snapshot=(index, digest))
            exit_status = machine.wait_ready()
            if exit_status is None:
                self._replay(machine, after=index, check=check)
                return machine
            machine.stop()
            log.error(
                "snapshot after input %d refused by the DApp (exit status %d%s); ignored",
                index,
                exit_status,
                ": corrupt or not the state recorded"
                if exit_status == EXIT_SNAPSHOT_INVALID
                else "",
            )
            self.store.delete_snapshot(index)
        machine = self._new_machine()
        self._replay(machine, after=-1, check=check)
        return machine

    def _replay(self, machine: HostMachine, *, after: int, check: bool) -> None:
        """Feed ``machine`` the processed inputs after input ``after``, in order."""
        done = self.store.inputs(where="status != 'NONE' AND idx > ?", args=(after,))
        for row in done:
            if row.status == "EXCEPTION":
                continue  # the machine rolled back; the DApp never saw it complete
            metadata, payload = decode_evm_advance(row.raw)
            result = machine.advance(metadata, payload)
            if check:
                self._check_replay(row, result)
            self._record_snapshot(row.index)  # the DApp wrote it again: one refused is replaced
        self.replayed = len(done)
        self.started_from_snapshot = after if after >= 0 else None
        if after >= 0:
            log.info("replayed %d inputs after the snapshot taken after input %d", len(done), after)
        elif done:
            log.info("replayed %d inputs (no snapshot)", len(done))

    # ---- snapshots -------------------------------------------------------------------------
    def _snapshot_path(self, index: int) -> Path:
        assert self.config.snapshot_dir is not None
        return snapshot_paths(Path(self.config.snapshot_dir), index)[0]

    def _record_snapshot(self, index: int) -> None:
        """Record the snapshot the DApp wrote after input ``index``, if it was its turn. The
        DApp writes it before it reports the input finished, so it is there by now."""
        if self.config.snapshot_dir is None or (index + 1) % self.config.snapshot_every:
            return
        digest_path = snapshot_paths(Path(self.config.snapshot_dir), index)[1]
        try:
            digest = digest_path.read_text().strip()
        except OSError as exc:
            log.error("no snapshot after input %d (%s); the next one will do", index, exc)
            return
        for old in self.store.add_snapshot(index, digest, keep=self.config.snapshots_kept):
            self._delete_snapshot_files(old)
        log.info("snapshot after input %d recorded (state digest %s)", index, digest[:16])

    def _delete_snapshot_files(self, index: int) -> None:
        if self.config.snapshot_dir is not None:
            for path in snapshot_paths(Path(self.config.snapshot_dir), index):
                path.unlink(missing_ok=True)

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
    def _check_claims(self) -> None:
        """A claim is final once its transaction is in a block the node scanned (the reorg
        check covers it from then on). Until then, a claim whose transaction left the chain
        (a reorg shallower than the scanned height, e.g. with ``confirmations``) is forgotten,
        so it is sent again; if a reorg put it back, the Authority's ``NotFirstClaim`` makes
        the node adopt it (same root) or stop (:class:`ClaimMismatch`)."""
        scanned = int(self.store.get_meta("scanned_block") or -1)
        for claim in reversed(self.store.claims()):
            if claim.epoch <= self._claims_final:
                break
            receipt = self.chain.get_receipt(claim.tx_hash)
            if receipt is None:
                self.store.delete_claim(claim.epoch)
                self._changed()
                log.warning(
                    "claim of epoch %d (tx %s) is no longer on the chain; it will be sent again",
                    claim.epoch,
                    claim.tx_hash,
                )
            elif receipt.block_number <= scanned:
                self._claims_final = claim.epoch
                break

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
            # Processing took a while: if the chain reorganized meanwhile, this root may be
            # one the chain no longer supports, and the Authority keeps the first claim for
            # good. Claim nothing; the next step rolls back. (A reorg after this check and
            # before the claim is mined stays possible: `confirmations` is the cure.)
            if self._find_reorg(self.chain.block_number()) is not None:
                return
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
