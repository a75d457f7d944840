"""The host-mode node's durable record, in SQLite: inputs, outputs, reports, epochs.

Each processed input is written in one SQLite transaction together with its outputs and
reports, so a crash leaves either all of an input's results or none. Inputs are keyed by
their InputBox index, so reading the same ``InputAdded`` event twice stores it once.

``blocks`` keeps the hash of every block that brought inputs and of the last block scanned:
the fewest hashes that still find, after a reorg, the last scanned block the chain kept (a
block whose hash is unchanged keeps all of its ancestors). ``snapshots`` names the DApp state
snapshots taken after an input (``dapp.snapshot``) and their state digests.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inputs (
    idx INTEGER PRIMARY KEY, block_number INTEGER NOT NULL, raw BLOB NOT NULL,
    tx_hash TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'NONE', outputs_hash BLOB);
CREATE TABLE IF NOT EXISTS outputs (
    idx INTEGER PRIMARY KEY, input_index INTEGER NOT NULL, raw BLOB NOT NULL,
    hash BLOB NOT NULL, execution_tx TEXT);
CREATE TABLE IF NOT EXISTS reports (
    idx INTEGER PRIMARY KEY, input_index INTEGER NOT NULL, raw BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS claims (
    epoch INTEGER PRIMARY KEY, last_block INTEGER NOT NULL, root BLOB NOT NULL,
    output_count INTEGER NOT NULL, tx_hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY, hash TEXT NOT NULL, has_inputs INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (input_index INTEGER PRIMARY KEY, digest TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS outputs_by_input ON outputs(input_index);
CREATE INDEX IF NOT EXISTS reports_by_input ON reports(input_index);
"""


@dataclass(frozen=True, slots=True)
class InputRow:
    index: int
    block_number: int
    raw: bytes
    tx_hash: str
    status: str
    outputs_hash: bytes | None


@dataclass(frozen=True, slots=True)
class OutputRow:
    index: int
    input_index: int
    raw: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class ReportRow:
    index: int
    input_index: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class ClaimRow:
    epoch: int
    last_block: int
    root: bytes
    output_count: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class RolledBack:
    """What a rollback to a block removed."""

    inputs: list[int]
    claims: list[int]
    snapshots: list[int]


class Store:
    """Thread-safe: the node loop writes while API threads read."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, args).fetchall())

    # ---- meta ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # ---- inputs ----------------------------------------------------------------------------
    def add_inputs(
        self,
        rows: Sequence[tuple[int, int, bytes, str]],
        scanned_to: int,
        scanned_hash: str,
        input_blocks: Sequence[tuple[int, str]] = (),
    ) -> None:
        """Record new inputs, the hashes of their blocks and the last block scanned (and its
        hash, to notice a reorg), atomically (no gap, no repeat)."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR IGNORE INTO inputs (idx, block_number, raw, tx_hash) VALUES (?,?,?,?)",
                rows,
            )
            db.executemany("INSERT OR REPLACE INTO blocks VALUES (?, ?, 1)", input_blocks)
            db.execute("DELETE FROM blocks WHERE has_inputs = 0")  # only the last scan end
            db.execute("INSERT OR IGNORE INTO blocks VALUES (?, ?, 0)", (scanned_to, scanned_hash))
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('scanned_block', ?)", (str(scanned_to),)
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('scanned_hash', ?)", (scanned_hash,))

    def record_result(
        self,
        *,
        input_index: int,
        status: str,
        outputs: Sequence[OutputRow],
        reports: Sequence[bytes],
        outputs_hash: bytes,
    ) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE inputs SET status = ?, outputs_hash = ? WHERE idx = ?",
                (status, outputs_hash, input_index),
            )
            db.executemany(
                "INSERT INTO outputs (idx, input_index, raw, hash) VALUES (?,?,?,?)",
                [(o.index, o.input_index, o.raw, o.hash) for o in outputs],
            )
            next_report = db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM reports").fetchone()[0]
            db.executemany(
                "INSERT INTO reports (idx, input_index, raw) VALUES (?,?,?)",
                [(next_report + i, input_index, r) for i, r in enumerate(reports)],
            )

    def inputs(
        self,
        *,
        where: str = "1",
        args: Sequence[Any] = (),
        limit: int = -1,
        offset: int = 0,
        descending: bool = False,
    ) -> list[InputRow]:
        order = "DESC" if descending else "ASC"
        rows = self._rows(
            f"SELECT idx, block_number, raw, tx_hash, status, outputs_hash FROM inputs "
            f"WHERE {where} ORDER BY idx {order} LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [InputRow(*row) for row in rows]

    def next_input_index(self) -> int:
        """One past the highest stored input index (a primary-key lookup, not a count)."""
        return int(self._rows("SELECT COALESCE(MAX(idx) + 1, 0) FROM inputs", ())[0][0])

    def input_epochs(self, epoch_length: int) -> list[int]:
        rows = self._rows(
            "SELECT DISTINCT block_number / ? FROM inputs ORDER BY 1", (epoch_length,)
        )
        return [int(row[0]) for row in rows]

    def count(self, table: str, *, where: str = "1", args: Sequence[Any] = ()) -> int:
        assert table in ("inputs", "outputs", "reports", "claims")
        return int(self._rows(f"SELECT COUNT(*) FROM {table} WHERE {where}", args)[0][0])

    # ---- outputs and reports -----------------------------------------------------------------
    def outputs(
        self,
        *,
        where: str = "1",
        args: Sequence[Any] = (),
        limit: int = -1,
        offset: int = 0,
        descending: bool = False,
    ) -> list[OutputRow]:
        order = "DESC" if descending else "ASC"
        rows = self._rows(
            f"SELECT idx, input_index, raw, hash FROM outputs WHERE {where} "
            f"ORDER BY idx {order} LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [OutputRow(*row) for row in rows]

    def reports(
        self,
        *,
        where: str = "1",
        args: Sequence[Any] = (),
        limit: int = -1,
        offset: int = 0,
        descending: bool = False,
    ) -> list[ReportRow]:
        order = "DESC" if descending else "ASC"
        rows = self._rows(
            f"SELECT idx, input_index, raw FROM reports WHERE {where} "
            f"ORDER BY idx {order} LIMIT ? OFFSET ?",
            (*args, limit, offset),
        )
        return [ReportRow(*row) for row in rows]

    def output_hashes(self) -> list[bytes]:
        return [bytes(row[0]) for row in self._rows("SELECT hash FROM outputs ORDER BY idx")]

    def block_hashes(self, *, at_most: int) -> list[tuple[int, str]]:
        """Known (block, hash) pairs at or below ``at_most``, highest first."""
        rows = self._rows(
            "SELECT number, hash FROM blocks WHERE number <= ? ORDER BY number DESC", (at_most,)
        )
        return [(int(n), str(h)) for n, h in rows]

    def roll_back_to(self, block: int, block_hash: str | None) -> RolledBack:
        """Forget everything from blocks after ``block`` (the last block the chain kept, with
        its hash; None: nothing is kept and the next scan starts at the deployment): inputs
        and their outputs and reports, the claims of epochs ending there, the snapshots taken
        after a dropped input. One transaction."""
        with self._tx() as db:
            dropped = [
                int(r[0])
                for r in db.execute("SELECT idx FROM inputs WHERE block_number > ?", (block,))
            ]
            first = min(dropped, default=None)
            claims = [
                int(r[0])
                for r in db.execute("SELECT epoch FROM claims WHERE last_block > ?", (block,))
            ]
            snapshots: list[int] = []
            if first is not None:
                snapshots = [
                    int(r[0])
                    for r in db.execute(
                        "SELECT input_index FROM snapshots WHERE input_index >= ?", (first,)
                    )
                ]
                db.execute("DELETE FROM outputs WHERE input_index >= ?", (first,))
                db.execute("DELETE FROM reports WHERE input_index >= ?", (first,))
                db.execute("DELETE FROM snapshots WHERE input_index >= ?", (first,))
                db.execute("DELETE FROM inputs WHERE idx >= ?", (first,))
            db.execute("DELETE FROM claims WHERE last_block > ?", (block,))
            db.execute("DELETE FROM blocks WHERE number > ?", (block,))
            if block_hash is None:
                db.execute("DELETE FROM meta WHERE key IN ('scanned_block', 'scanned_hash')")
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('scanned_block', ?)", (str(block),))
                db.execute("INSERT OR REPLACE INTO meta VALUES ('scanned_hash', ?)", (block_hash,))
        return RolledBack(dropped, claims, snapshots)

    # ---- snapshots ---------------------------------------------------------------------------
    def add_snapshot(self, input_index: int, digest: str, *, keep: int) -> list[int]:
        """Record a snapshot; forget all but the ``keep`` latest. The forgotten indexes."""
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?)", (input_index, digest))
            old = [
                int(r[0])
                for r in db.execute(
                    "SELECT input_index FROM snapshots ORDER BY input_index DESC LIMIT -1 OFFSET ?",
                    (keep,),
                )
            ]
            db.executemany("DELETE FROM snapshots WHERE input_index = ?", [(i,) for i in old])
        return old

    def snapshots(self) -> list[tuple[int, str]]:
        """(input index, state digest) of each recorded snapshot, latest first."""
        rows = self._rows("SELECT input_index, digest FROM snapshots ORDER BY input_index DESC")
        return [(int(i), str(d)) for i, d in rows]

    def delete_snapshot(self, input_index: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM snapshots WHERE input_index = ?", (input_index,))

    # ---- claims ------------------------------------------------------------------------------
    def add_claim(self, claim: ClaimRow) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO claims VALUES (?,?,?,?,?)",
                (claim.epoch, claim.last_block, claim.root, claim.output_count, claim.tx_hash),
            )

    def delete_claim(self, epoch: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM claims WHERE epoch = ?", (epoch,))

    def claims(self) -> list[ClaimRow]:
        rows = self._rows(
            "SELECT epoch, last_block, root, output_count, tx_hash FROM claims ORDER BY epoch"
        )
        return [ClaimRow(*row) for row in rows]
