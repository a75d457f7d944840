"""Every inspect query the DApp answers: its path, its typed parameters and its reply.

An inspect payload is a UTF-8 path such as ``jobs/1/rounds/0``. Each query is declared once
here, like the advance inputs in ``deml_protocol.inputs``; the DApp routes a path with
:func:`match` and answers with the declared reply shape, and a client builds the path and
decodes the reply with the same declaration::

    path = queries.ROUND.path(job_id=1, round=0)        # "jobs/1/rounds/0"
    reply = queries.ROUND.decode(report_bytes)           # a RoundReply (a TypedDict)

Money is a decimal string (wei overflow a double); every other number is a JSON integer.
"""

# No `from __future__ import annotations`: the reply TypedDicts must keep `NotRequired`
# visible at runtime, or `Query.decode` would treat optional keys as required.

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Generic, NotRequired, TypedDict, TypeVar, cast, get_args, get_origin

from .errors import BadArgument, UnknownQuery

__all__ = [
    "ALL_QUERIES",
    "BALANCES",
    "BLOB",
    "BLOB_DATA",
    "JOB",
    "JOBS",
    "LATEST_MODEL",
    "LEADERBOARD",
    "MAX_PATH_BYTES",
    "ROUND",
    "STATE_DIGEST",
    "UPLOADS",
    "BalancesReply",
    "BlobPageReply",
    "BlobReply",
    "JobReply",
    "JobSummary",
    "LatestModelReply",
    "LeaderboardEntry",
    "Query",
    "RoundReply",
    "StateDigestReply",
    "SubmissionReply",
    "UploadReply",
    "UploaderReply",
    "match",
]


#: The longest inspect payload the DApp reads; a longer one is refused (``payload_too_large``)
#: before it is decoded or parsed. Every declared path is far shorter (a CID is under 100).
MAX_PATH_BYTES: Final = 1024


# ---- replies -------------------------------------------------------------------------------
class BalancesReply(TypedDict):
    address: str
    ether: str  # wei, decimal
    erc20: dict[str, str]  # token address -> amount, decimal; zero balances left out


class UploaderReply(TypedDict):
    uploader: str
    size: int
    received: int


class BlobReply(TypedDict):
    cid: str
    status: str  # "stored" | "uploading" | "absent"
    size: NotRequired[int]  # stored
    uploader: NotRequired[str]  # stored
    input_index: NotRequired[int]  # stored
    pins: NotRequired[int]  # stored: live references; collectable only at 0
    keep_until_ts: NotRequired[int]  # stored: and only from this block time
    uploads: NotRequired[list[UploaderReply]]  # uploading or absent


class BlobPageReply(TypedDict):
    cid: str
    size: int
    offset: int
    data_base64: str
    next_offset: int | None  # None on the last page


class StorageReply(TypedDict):
    total_quota_bytes: int
    held_bytes: int  # stored blobs plus chunks received
    reserved_bytes: int  # room promised to sponsors' shards and committed clients' models
    free_bytes: int  # what an upload without a reservation may still take (can be 0)


class UnpinnedBlobReply(TypedDict):
    cid: str
    size: int
    keep_until_ts: int  # collectBlobs may delete it from this block time


class UploadReply(TypedDict):
    cid: str
    size: int
    received: int  # the offset of the next putChunk
    started_ts: int


class JobSummary(TypedDict):
    id: int
    sponsor: str
    asset: str  # token address, or the zero address for ether
    escrow: str
    metric: str
    rounds: int
    current_round: int  # equals rounds once finished
    status: str  # "open" | "finished"
    global_model_cid: str


class SubmissionReply(TypedDict):
    client: str
    commitment: str
    bond: str
    model_cid: str | None
    score: int | None
    is_copy: bool


class RoundReply(TypedDict):
    job: int
    round: int
    budget: str
    model_cid: str
    start_ts: int
    commit_end_ts: int
    holdout_end_ts: int
    reveal_end_ts: int
    holdout_cid: str | None
    baseline: int | None
    closed: bool
    new_model_cid: str | None
    submissions: list[SubmissionReply]


class JobReply(JobSummary):
    initial_model_cid: str
    recipe: str
    holdout_rows: int
    holdout_commitments: list[str]
    commit_seconds: int
    holdout_seconds: int
    reveal_seconds: int
    min_gain: int
    max_submissions: int
    commit_bond: str
    payout: str
    aggregation: str
    trim_percent: int
    created_ts: int
    carried: str
    paid: str
    refunded: str
    opened_rounds: list[RoundReply]  # full views, same shape as ROUND's reply


class LeaderboardEntry(TypedDict):
    rank: int
    client: str
    best_score: int
    gain: int


class LatestModelReply(TypedDict):
    job: int
    round: int
    cid: str
    size: int


class StateDigestReply(TypedDict):
    state_digest: str


# ---- parameters ----------------------------------------------------------------------------
_ADDRESS: Final = re.compile(r"0[xX][0-9a-fA-F]{40}")


def _uint(text: str, name: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 78:
        raise BadArgument(f"{name} must be a decimal number, got {text[:80]!r}")
    return int(text)


def _address(text: str, name: str) -> str:
    if not _ADDRESS.fullmatch(text):
        raise BadArgument(f"{name} must be a 0x-prefixed 20-byte hex address, got {text[:80]!r}")
    return "0x" + text[2:].lower()


def _text(text: str, name: str) -> str:
    if not text:
        raise BadArgument(f"{name} is empty")
    return text


#: Parameter kinds: ``{name:kind}`` in a template. A CID stays text: the DApp canonicalizes it.
PARAMETER_KINDS: Final[Mapping[str, Callable[[str, str], object]]] = {
    "uint": _uint,
    "address": _address,
    "cid": _text,
}
_PARAMETER: Final = re.compile(r"\{([a-z_]+):([a-z]+)\}")

R = TypeVar("R")


# Not slots: calling ``Query[X](...)`` makes typing try to set ``__orig_class__`` on the
# instance, which a slotted frozen dataclass turns into a TypeError.
@dataclass(frozen=True)
class Query(Generic[R]):
    """One inspect query: ``template`` is its path with ``{name:kind}`` parameters."""

    name: str
    template: str
    summary: str
    reply: Any  # the reply's type (a TypedDict, or a list of one), checked by ``decode``
    segments: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(self.template.split("/")))
        for segment in self.segments:
            kind = _PARAMETER.fullmatch(segment)
            if kind is not None and kind.group(2) not in PARAMETER_KINDS:
                raise ValueError(f"{self.template}: unknown parameter kind {kind.group(2)!r}")

    def path(self, **params: object) -> str:
        """The inspect payload for these parameters (checked as the DApp checks them)."""
        parts = []
        for segment in self.segments:
            found = _PARAMETER.fullmatch(segment)
            if found is None:
                parts.append(segment)
                continue
            name, kind = found.groups()
            if name not in params:
                raise TypeError(f"{self.name} needs the parameter {name!r}")
            text = str(params.pop(name))
            PARAMETER_KINDS[kind](text, name)
            parts.append(text)
        if params:
            raise TypeError(f"{self.name} takes no parameters {sorted(params)}")
        return "/".join(parts)

    def parse(self, parts: list[str]) -> dict[str, object] | None:
        """The typed parameters if ``parts`` fits this template, else None."""
        if len(parts) != len(self.segments):
            return None
        pairs = list(zip(self.segments, parts, strict=True))
        found = [(_PARAMETER.fullmatch(segment), part) for segment, part in pairs]
        if any(
            kind is None and segment != part
            for (kind, _), (segment, part) in zip(found, pairs, strict=True)
        ):
            return None  # literals first: a bad parameter is an error only on the right path
        return {
            kind.group(1): PARAMETER_KINDS[kind.group(2)](part, kind.group(1))
            for kind, part in found
            if kind is not None
        }

    def decode(self, body: bytes | str) -> R:
        """A reply's JSON, checked against the declared shape (keys, lists) and typed."""
        value = json.loads(body)
        _check_shape(value, self.reply, self.name)
        return cast(R, value)


def _check_shape(value: Any, shape: Any, where: str) -> None:
    """Required keys of TypedDicts, element by element in lists; leaves are not checked."""
    if get_origin(shape) is list:
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
        for item in value:
            _check_shape(item, get_args(shape)[0], where)
    elif isinstance(shape, type) and issubclass(shape, dict) and hasattr(shape, "__annotations__"):
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected an object, got {type(value).__name__}")
        required: frozenset[str] = getattr(shape, "__required_keys__", frozenset())
        missing = required - value.keys()
        if missing:
            raise ValueError(f"{where}: reply lacks {sorted(missing)}")


# ---- the queries ---------------------------------------------------------------------------
BALANCES: Final = Query[BalancesReply](
    "balances", "balances/{address:address}", "in-app balances of one address", BalancesReply
)
BLOB: Final = Query[BlobReply](
    "blob", "blobs/{cid:cid}", "one blob: stored, uploading or absent", BlobReply
)
BLOB_DATA: Final = Query[BlobPageReply](
    "blob_data",
    "blobs/{cid:cid}/data/{offset:uint}",
    "a page (512 KiB) of a stored blob's bytes, base64",
    BlobPageReply,
)
UPLOADS: Final = Query[list[UploadReply]](
    "uploads", "uploads/{uploader:address}", "an uploader's unfinished uploads", list[UploadReply]
)
JOBS: Final = Query[list[JobSummary]]("jobs", "jobs", "every job, summary, by id", list[JobSummary])
JOB: Final = Query[JobReply](
    "job", "jobs/{job_id:uint}", "one job: spec, accounting and every round opened", JobReply
)
ROUND: Final = Query[RoundReply](
    "round", "jobs/{job_id:uint}/rounds/{round:uint}", "one round with its submissions", RoundReply
)
LEADERBOARD: Final = Query[list[LeaderboardEntry]](
    "leaderboard",
    "jobs/{job_id:uint}/leaderboard",
    "clients by best score over the job",
    list[LeaderboardEntry],
)
LATEST_MODEL: Final = Query[LatestModelReply](
    "latest_model",
    "models/{job_id:uint}/latest",
    "the job's current global model",
    LatestModelReply,
)
STATE_DIGEST: Final = Query[StateDigestReply](
    "state_digest", "state/digest", "sha256 of the canonical state", StateDigestReply
)

STORAGE: Final = Query[StorageReply](
    "storage", "storage", "the DApp's blob room: quota, held, promised, free", StorageReply
)
UNPINNED: Final = Query[list[UnpinnedBlobReply]](
    "unpinned",
    "storage/unpinned",
    "stored blobs nothing pins, soonest collectable first (at most 256)",
    list[UnpinnedBlobReply],
)
ALL_QUERIES: Final[tuple[Query[Any], ...]] = (
    BALANCES,
    BLOB,
    BLOB_DATA,
    STORAGE,
    UNPINNED,
    UPLOADS,
    JOBS,
    JOB,
    ROUND,
    LEADERBOARD,
    LATEST_MODEL,
    STATE_DIGEST,
)


def match(
    path: str, queries: tuple[Query[Any], ...] = ALL_QUERIES
) -> tuple[Query[Any], dict[str, object]]:
    """The query a path names and its typed parameters. Surrounding ``/`` and spaces are
    ignored. Raises ``UnknownQuery`` (no template fits) or ``BadArgument`` (a parameter)."""
    parts = path.strip().strip("/").split("/")
    for query in queries:
        params = query.parse(parts)
        if params is not None:
            return query, params
    heads = ", ".join(q.template for q in queries)
    raise UnknownQuery(f"unknown query {path[:200]!r}; the queries are: {heads}")
