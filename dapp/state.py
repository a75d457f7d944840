"""The DApp's whole state, and how an input changes it all-or-nothing.

Every field of :class:`State` is a :class:`Table`: a dict whose values are immutable (ints,
strs, bytes, tuples, frozen dataclasses) and whose every write is recorded in the state's
undo journal. A transaction is then a position in that journal: rolling back undoes the
writes after it, newest first; committing forgets them. An input costs what it writes, never
what the state holds, so the cost of an input does not grow with history
(``bench/state_scaling.py``). On a real Cartesi Machine the node also rolls the machine back
after a rejected input; in host mode this is the only rollback there is.

Iteration order is not part of the state: undoing a deletion puts the key back at the end of
its table. Code that iterates a table sorts or aggregates, and :meth:`State.digest` sorts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, TypeVar

from .records import Amount, Blob, Job, Round, Submission, Upload

K = TypeVar("K")
V = TypeVar("V")

#: The "old value" of a key that did not exist before a write.
_ABSENT: Final = object()


def _empty() -> Any:
    return {}  # becomes a Table in State.__post_init__, once the journal exists


class Journal:
    """Undo records of the writes not yet committed: (table, key, old value or absent)."""

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[tuple[dict[Any, Any], Any, Any]] = []


class Table(dict[K, V]):
    """A state table: a dict that records how to undo each write in its state's journal.

    Only the writes a handler uses are allowed (item assignment, ``del``, ``pop``,
    ``setdefault``); the bulk ones raise, so no write can bypass the journal.
    """

    __slots__ = ("_journal",)

    def __init__(self, journal: Journal, items: Iterable[tuple[K, V]] = ()) -> None:
        super().__init__(items)
        self._journal = journal

    def __setitem__(self, key: K, value: V) -> None:
        self._journal.entries.append((self, key, self.get(key, _ABSENT)))
        super().__setitem__(key, value)

    def __delitem__(self, key: K) -> None:
        old = self[key]  # KeyError first, as dict does
        self._journal.entries.append((self, key, old))
        super().__delitem__(key)

    def pop(self, key: K, *default: Any) -> Any:
        if key in self:
            self._journal.entries.append((self, key, self[key]))
        return super().pop(key, *default)

    def setdefault(self, key: K, default: V) -> V:
        if key not in self:
            self[key] = default
        return self[key]

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("a state table takes single writes only (they are journaled)")

    update = popitem = clear = __ior__ = _refuse

    def __reduce__(self) -> Any:
        raise TypeError("a state table is not pickled; use State.digest or a snapshot")


@dataclass(slots=True)
class State:
    #: (asset, owner) -> amount in base units; asset is a token address or ETHER (zero address).
    balances: Table[tuple[str, str], Amount] = field(default_factory=_empty)
    #: Named monotonic counters (next job id, ...).
    counters: Table[str, int] = field(default_factory=_empty)
    #: CID -> stored blob record (see dapp.blobs).
    blobs: Table[str, Blob] = field(default_factory=_empty)
    #: CID -> the bytes of a stored blob.
    blob_bytes: Table[str, bytes] = field(default_factory=_empty)
    #: (uploader, CID) -> upload in progress (see dapp.blobs).
    uploads: Table[tuple[str, str], Upload] = field(default_factory=_empty)
    #: job id -> job record (see dapp.jobs).
    jobs: Table[int, Job] = field(default_factory=_empty)
    #: (job id, round) -> round record.
    rounds: Table[tuple[int, int], Round] = field(default_factory=_empty)
    #: (job id, round, client) -> submission record.
    submissions: Table[tuple[int, int, str], Submission] = field(default_factory=_empty)
    #: (job id, weights fingerprint) -> who showed those weights first in the job ("global"
    #: for the job's global models). Later reveals of the same weights are copies.
    fingerprints: Table[tuple[int, bytes], str] = field(default_factory=_empty)
    journal: Journal = field(default_factory=Journal, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Whatever dicts the caller gave (or the empty defaults) become journaled tables.
        for name in TABLES:
            setattr(self, name, Table(self.journal, getattr(self, name).items()))

    # -- transactions --

    def savepoint(self) -> int:
        """Where a transaction (or a nested one) starts: ``rollback(savepoint)`` returns here."""
        return len(self.journal.entries)

    def rollback(self, savepoint: int = 0) -> None:
        """Undo every write after ``savepoint``, newest first."""
        entries = self.journal.entries
        while len(entries) > savepoint:
            table, key, old = entries.pop()
            if old is _ABSENT:
                dict.__delitem__(table, key)
            else:
                dict.__setitem__(table, key, old)

    def commit(self) -> None:
        """Keep every write so far: the journal is emptied."""
        self.journal.entries.clear()

    @property
    def in_transaction(self) -> bool:
        return bool(self.journal.entries)

    # -- values --

    def tables(self) -> dict[str, Table[Any, Any]]:
        """Every table by field name, in declaration order."""
        return {name: getattr(self, name) for name in TABLES}

    def copy(self) -> State:
        """An independent State with the same entries (for tests and tools: a transaction
        never copies)."""
        return State.from_tables(self.tables())

    @staticmethod
    def from_tables(tables: Mapping[str, Mapping[Any, Any]]) -> State:
        """A fresh State holding these entries, nothing journaled (a loaded snapshot, a copy).
        Tables not named stay empty."""
        state = State()
        for name, entries in tables.items():
            dict.update(getattr(state, name), entries)
        return state

    def digest(self) -> str:
        """sha256 over a canonical encoding: equal states give equal digests on any run."""
        canonical = {name: _canonical(table) for name, table in self.tables().items()}
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def add_count(state: State, key: str, delta: int) -> None:
    """Move the counter ``key`` by ``delta``; a counter at zero has no row (so the digest has
    one spelling for "nothing")."""
    total = state.counters.get(key, 0) + delta
    if total:
        state.counters[key] = total
    else:
        state.counters.pop(key, None)


#: The names of State's tables (every field but the journal).
TABLES: Final = tuple(f.name for f in fields(State) if f.name != "journal")


def _canonical(value: Any) -> Any:
    """A JSON-able form with one spelling per value: dicts become sorted pair lists."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, bytes):
        # Hash instead of hex-dumping: blobs can be megabytes.
        return {"bytes": hashlib.sha256(value).hexdigest(), "len": len(value)}
    if isinstance(value, (tuple, list)):
        return [_canonical(item) for item in value]
    if isinstance(value, dict):
        pairs = [[_canonical(k), _canonical(v)] for k, v in value.items()]
        return sorted(pairs, key=lambda pair: json.dumps(pair[0], sort_keys=True))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body = {f.name: _canonical(getattr(value, f.name)) for f in fields(value)}
        return {type(value).__name__: body}
    raise TypeError(f"state holds a value with no canonical form: {type(value).__name__}")
