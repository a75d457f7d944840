"""Snapshots of the DApp's state, so a restarted host does not replay all history.

A snapshot is the whole :class:`~dapp.state.State` in one canonical JSON document: every
value is tagged with its type (ints as decimal strings, bytes as hex, tuples, the frozen
records of ``dapp.records`` by name, ``Metric`` by value), every dict is a list of pairs
sorted by the key's encoding. Equal states give byte-equal snapshots on any run. Only the
classes named in :data:`RECORDS` can come out of a load: a snapshot is data, never code.

The DApp writes one when the host asks for it (``DEML_SNAPSHOT_DIR`` and
``DEML_SNAPSHOT_EVERY``, read by ``dapp.__main__``): after every ``every``-th input by index,
once that input is finished (its state committed or dropped, its outputs emitted) and
before the DApp asks for the next one, so a snapshot never holds half an input. Beside it,
``state-<index>.sha256`` holds :meth:`State.digest` of what was written; the host keeps that
digest and hands it back with the snapshot to load (``DEML_SNAPSHOT_LOAD``,
``DEML_SNAPSHOT_DIGEST``). A load whose state does not have that digest is refused
(:class:`SnapshotInvalid`): the DApp exits with :data:`EXIT_SNAPSHOT_INVALID` before serving
anything, and the host replays from the start instead.

This module reads only ``State``'s tables (``State.tables``, ``State.from_tables``) and the
records, so how transactions work inside ``State`` does not touch it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from deml_protocol.metrics import Metric

from .records import Blob, Job, JobSpec, Round, Submission, Upload
from .state import TABLES, State

__all__ = [
    "EXIT_SNAPSHOT_INVALID",
    "SnapshotInvalid",
    "SnapshotWriter",
    "decode_state",
    "encode_state",
    "load_snapshot",
    "snapshot_paths",
]

#: The records a snapshot may hold, by class name: nothing else is ever constructed.
RECORDS: Final[dict[str, type[Any]]] = {
    cls.__name__: cls for cls in (Blob, Job, JobSpec, Round, Submission, Upload)
}
#: The exit status of a DApp given a snapshot it cannot load (the host then replays all).
EXIT_SNAPSHOT_INVALID: Final = 3
FORMAT: Final = "deml-state-snapshot/1"


class SnapshotInvalid(Exception):
    """The snapshot is unreadable, malformed, or its state is not the one it claims to be."""


def snapshot_paths(directory: Path, input_index: int) -> tuple[Path, Path]:
    """(state file, digest file) of the snapshot taken after input ``input_index``."""
    stem = directory / f"state-{input_index:012d}"
    return stem.with_suffix(".json"), stem.with_suffix(".sha256")


# ---- encoding ------------------------------------------------------------------------------
def encode_state(state: State) -> bytes:
    """The canonical encoding: one byte string per state."""
    body = {name: _encode(table) for name, table in state.tables().items()}
    document = {"format": FORMAT, "state": body}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _encode(value: Any) -> Any:
    if isinstance(value, Metric):  # before str: a StrEnum is a str
        return {"metric": value.value}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, tuple):
        return {"tuple": [_encode(item) for item in value]}
    if isinstance(value, dict):
        pairs = [[_encode(k), _encode(v)] for k, v in value.items()]
        pairs.sort(key=lambda pair: json.dumps(pair[0], sort_keys=True, separators=(",", ":")))
        return {"dict": pairs}
    if dataclasses.is_dataclass(value) and type(value).__name__ in RECORDS:
        body = {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
        return {"record": type(value).__name__, "fields": body}
    raise TypeError(f"the state holds a value a snapshot cannot encode: {type(value).__name__}")


# ---- decoding ------------------------------------------------------------------------------
def decode_state(data: bytes) -> State:
    try:
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise SnapshotInvalid("not a DeML state snapshot (format)")
        body = document["state"]
        names = set(TABLES)
        if not isinstance(body, dict) or set(body) != names:
            raise SnapshotInvalid(f"the snapshot's tables are not {sorted(names)}")
        tables = {name: _decode(body[name]) for name in names}
        if not all(isinstance(table, dict) for table in tables.values()):
            raise SnapshotInvalid("a state table is not a dict")
        return State.from_tables(tables)
    except SnapshotInvalid:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise SnapshotInvalid(f"malformed snapshot: {exc!r}") from exc


def _decode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise SnapshotInvalid(f"untagged value in a snapshot: {str(value)[:80]}")
    if "int" in value:
        return int(value["int"])
    if "bytes" in value:
        return bytes.fromhex(value["bytes"])
    if "metric" in value:
        return Metric(value["metric"])
    if "tuple" in value:
        return tuple(_decode(item) for item in value["tuple"])
    if "dict" in value:
        return {_decode(k): _decode(v) for k, v in value["dict"]}
    if "record" in value:
        cls = RECORDS.get(value["record"])
        if cls is None:
            raise SnapshotInvalid(f"unknown record {value['record']!r}")
        return cls(**{name: _decode(v) for name, v in value["fields"].items()})
    raise SnapshotInvalid(f"unknown tag in a snapshot: {sorted(value)}")


# ---- files ---------------------------------------------------------------------------------
def load_snapshot(path: Path, expected_digest: str) -> State:
    """The state in ``path``, if and only if its digest is ``expected_digest`` (the one the
    host recorded when the snapshot was taken) and the one written beside it."""
    digest_path = path.with_suffix(".sha256")
    try:
        data, beside = path.read_bytes(), digest_path.read_text().strip()
    except OSError as exc:
        raise SnapshotInvalid(f"cannot read the snapshot: {exc}") from exc
    state = decode_state(data)
    digest = state.digest()
    if digest != expected_digest or digest != beside:
        raise SnapshotInvalid(
            f"the loaded state's digest is {digest}; the host expects {expected_digest} and "
            f"the file beside it says {beside}"
        )
    return state


def _write_atomically(path: Path, data: bytes) -> None:
    """Whole or absent after a crash: a temporary file, fsync, rename, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


@dataclass(frozen=True, slots=True)
class SnapshotWriter:
    """Writes a snapshot after every ``every``-th input (by input index): after input ``i``
    when ``(i + 1) % every == 0``, so the host knows which snapshots to expect."""

    directory: Path
    every: int

    def after_input(self, state: State, input_index: int) -> Path | None:
        if (input_index + 1) % self.every:
            return None
        state_path, digest_path = snapshot_paths(self.directory, input_index)
        self.directory.mkdir(parents=True, exist_ok=True)
        # A digest left from an earlier run (a chain since reorganized) must not outlive a
        # failed write and name the old state for this input.
        digest_path.unlink(missing_ok=True)
        _write_atomically(state_path, encode_state(state))
        # The digest last: the host records a snapshot only once its digest file exists.
        _write_atomically(digest_path, state.digest().encode())
        return state_path
