"""The DApp's whole state, and how an input changes it all-or-nothing.

Invariant: every field of :class:`State` is a dict whose values are immutable (ints, strs,
bytes, tuples, frozen dataclasses). A transaction is then a shallow copy of each dict — a
C-speed copy, cheap even on the emulator — and a handler mutates only its copy. Committing is
keeping the copy; rolling back is dropping it. On a real Cartesi Machine the node also rolls
the machine back after a rejected input; in host mode this is the only rollback there is.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

from .records import Amount, Blob, Job, Round, Submission, Upload


@dataclass(slots=True)
class State:
    #: (asset, owner) -> amount in base units; asset is a token address or ETHER (zero address).
    balances: dict[tuple[str, str], Amount] = field(default_factory=dict)
    #: Named monotonic counters (next job id, ...).
    counters: dict[str, int] = field(default_factory=dict)
    #: CID -> stored blob record (see dapp.blobs).
    blobs: dict[str, Blob] = field(default_factory=dict)
    #: CID -> the bytes of a stored blob.
    blob_bytes: dict[str, bytes] = field(default_factory=dict)
    #: (uploader, CID) -> upload in progress (see dapp.blobs).
    uploads: dict[tuple[str, str], Upload] = field(default_factory=dict)
    #: job id -> job record (see dapp.jobs).
    jobs: dict[int, Job] = field(default_factory=dict)
    #: (job id, round) -> round record.
    rounds: dict[tuple[int, int], Round] = field(default_factory=dict)
    #: (job id, round, client) -> submission record.
    submissions: dict[tuple[int, int, str], Submission] = field(default_factory=dict)
    #: (job id, weights fingerprint) -> who showed those weights first in the job ("global"
    #: for the job's global models). Later reveals of the same weights are copies.
    fingerprints: dict[tuple[int, bytes], str] = field(default_factory=dict)

    def copy(self) -> State:
        """A transaction: an independent State sharing only immutable values."""
        return State(**{f.name: dict(getattr(self, f.name)) for f in fields(self)})

    def digest(self) -> str:
        """sha256 over a canonical encoding: equal states give equal digests on any run."""
        canonical = {f.name: _canonical(getattr(self, f.name)) for f in fields(self)}
        text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


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
