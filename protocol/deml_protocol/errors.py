"""Every way the DApp rejects an input or a query: one table, shared by the DApp and clients.

A rejection report is the JSON ``{"error": code, "detail": message}``. Each code is one
exception class below, grouped by cause; the DApp raises these classes and a client turns a
report back into the same class with :meth:`Rejected.from_report`::

    try:
        raise Rejected.from_report(json.loads(report))
    except WindowClosed:          # one code
        ...
    except TimingError:           # every code of a cause
        ...

Rules (a test keeps ``docs/protocol.md`` §6, this table and the DApp in agreement):

- a code names one thing, in every package; it is never reused: a code the DApp no longer
  raises moves to :data:`RETIRED_CODES` with what it meant, and stays there;
- client-side errors that are not DApp rejections (off-chain stores, CID parsing) carry
  codes of their own that never collide with these.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar, Final

__all__ = [
    "AggregationWeightsInvalid",
    "AlreadyCommitted",
    "AlreadyRevealed",
    "BadAbi",
    "BadArgument",
    "BlobExists",
    "BlobInUse",
    "BlobNotFound",
    "BlobTooLarge",
    "Cause",
    "ChunkExceedsSize",
    "ChunkOutOfOrder",
    "CidMismatch",
    "CommitmentMismatch",
    "ConflictError",
    "DepositRequired",
    "DuplicateChunk",
    "ERROR_CODES",
    "EmptyPayload",
    "FundsError",
    "GraphMismatch",
    "HoldoutAlreadyRevealed",
    "HoldoutMismatch",
    "HoldoutPending",
    "InitializerMismatch",
    "InsufficientBalance",
    "InternalError",
    "InternalFailure",
    "InvalidCid",
    "InvalidJobSpec",
    "JobSpecError",
    "LimitExceeded",
    "MAX_DETAIL_CHARS",
    "MalformedDeposit",
    "MalformedInput",
    "MemoryBudgetExceeded",
    "MismatchError",
    "ModelFeatureNotAllowed",
    "ModelInvalid",
    "ModelIoInvalid",
    "ModelOutputInvalid",
    "ModelRejected",
    "ModelRunFailed",
    "ModelTooLarge",
    "ModelUnparseable",
    "NoCommitment",
    "NoSuchJob",
    "NoSuchUpload",
    "NonFiniteWeights",
    "NotFound",
    "NotFoundError",
    "NotSponsor",
    "OperatorNotAllowed",
    "OutputRefused",
    "OutputTooLarge",
    "PayloadTooLarge",
    "PermissionDenied",
    "QuotaExceeded",
    "RETIRED_CODES",
    "Rejected",
    "RoundAlreadyClosed",
    "RoundFull",
    "RoundNotCurrent",
    "RoundNotOver",
    "ShardInvalid",
    "ShardModelMismatch",
    "ShardRejected",
    "ShardTooLarge",
    "TimingError",
    "TooManyNodes",
    "TooManyUploads",
    "UnknownError",
    "UnknownMetric",
    "UnknownPolicy",
    "UnknownQuery",
    "UnknownSelector",
    "UploadExpired",
    "UploadInProgress",
    "WindowClosed",
    "WindowNotOpen",
    "WorkBudgetExceeded",
    "cut_detail",
]


class Cause(StrEnum):
    """Why an input was refused, in groups a client can act on."""

    MALFORMED = "malformed_input"  # the bytes are not a call / query we understand
    MISSING = "missing"  # it names something that does not exist (yet)
    PERMISSION = "permission"  # the sender may not do this
    TIMING = "timing"  # right call, wrong time (windows, rounds, expiry)
    CONFLICT = "conflict"  # it was done already, or collides with what is in progress
    MISMATCH = "mismatch"  # bytes or a reveal do not match what was committed
    MODEL = "model_rejected"  # the ONNX model breaks a rule
    SHARD = "shard_rejected"  # the held-out shard breaks a rule or does not fit the model
    LIMIT = "limit_exceeded"  # a bound on size, work, memory, storage or participants
    FUNDS = "funds"  # not enough money
    JOB_SPEC = "job_spec"  # a job's parameters break a rule
    INTERNAL = "internal"  # a bug in the DApp, not in the input
    UNKNOWN = "unknown"  # a client read a code its table does not have (a newer DApp)


_REGISTRY: dict[str, type[Rejected]] = {}

#: A ``detail`` longer than this many characters is cut, with a marker saying so, so that a
#: rejection report stays small (at most about 2 KiB of ASCII, 24 KiB if every character is
#: escaped) whatever text the input smuggled into it (docs/protocol.md §1.5).
MAX_DETAIL_CHARS: Final = 2000

#: Codes the DApp no longer raises: code -> what it meant. Never reuse one of these.
RETIRED_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "wrong_sender": "the input had to come from a specific address; no input ever "
        "raised it (retired in the error table's first version)",
    }
)


class Rejected(Exception):
    """An input or query broke a rule; ``detail`` says what was wrong and what is accepted.

    Subclass a cause class (``TimingError``, ...) and declare ``code`` to add an error; a
    class without ``code`` is a group.
    """

    cause: ClassVar[Cause]
    code: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if code is None:
            return  # a cause group
        if not hasattr(cls, "cause"):
            raise TypeError(f"{cls.__name__} must subclass a cause group")
        if cls.cause is Cause.UNKNOWN:
            return  # a client-side stand-in for a code this table lacks, never registered
        if code in _REGISTRY or code in RETIRED_CODES:
            raise TypeError(f"error code {code!r} is taken or retired")
        _REGISTRY[code] = cls

    def __init__(self, detail: str) -> None:
        detail = cut_detail(detail)
        super().__init__(detail)
        self.detail = detail

    def as_report(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}

    @staticmethod
    def from_report(report: Mapping[str, Any]) -> Rejected:
        """The typed error of a rejection report (a code this table lacks: ``UnknownError``)."""
        code, detail = str(report.get("error", "")), str(report.get("detail", ""))
        cls = _REGISTRY.get(code)
        if cls is None:
            return UnknownError.of_code(code)(detail)
        return cls(detail)


def cut_detail(detail: str) -> str:
    """``detail`` itself, or its start and a marker, in at most :data:`MAX_DETAIL_CHARS`."""
    if len(detail) <= MAX_DETAIL_CHARS:
        return detail
    marker = f" [... cut: {len(detail):,} characters in all]"
    return detail[: MAX_DETAIL_CHARS - len(marker)] + marker


class UnknownError(Rejected):
    """A report whose code this version of the table does not know (from a newer DApp).

    ``from_report`` makes a subclass per such code, so ``.code`` and ``as_report`` still
    give the code the DApp sent."""

    cause = Cause.UNKNOWN
    code = ""

    @staticmethod
    def of_code(code: str) -> type[UnknownError]:
        return type("UnknownError", (UnknownError,), {"code": code})


# ---- causes --------------------------------------------------------------------------------
class MalformedInput(Rejected):
    cause = Cause.MALFORMED


class NotFoundError(Rejected):
    cause = Cause.MISSING


class PermissionDenied(Rejected):
    cause = Cause.PERMISSION


class TimingError(Rejected):
    cause = Cause.TIMING


class ConflictError(Rejected):
    cause = Cause.CONFLICT


class MismatchError(Rejected):
    cause = Cause.MISMATCH


class ModelRejected(Rejected):
    cause = Cause.MODEL


class ShardRejected(Rejected):
    cause = Cause.SHARD


class LimitExceeded(Rejected):
    cause = Cause.LIMIT


class FundsError(Rejected):
    cause = Cause.FUNDS


class JobSpecError(Rejected):
    cause = Cause.JOB_SPEC


class InternalFailure(Rejected):
    cause = Cause.INTERNAL


# ---- malformed input -----------------------------------------------------------------------
class PayloadTooLarge(MalformedInput):
    code = "payload_too_large"


class EmptyPayload(MalformedInput):
    code = "empty_payload"


class UnknownSelector(MalformedInput):
    code = "unknown_selector"


class BadAbi(MalformedInput):
    code = "bad_abi"


class BadArgument(MalformedInput):
    """An argument decoded but its value is out of range or malformed (e.g. a bad address)."""

    code = "bad_argument"


class MalformedDeposit(MalformedInput):
    code = "malformed_deposit"


class InvalidCid(MalformedInput):
    code = "invalid_cid"


class UnknownMetric(MalformedInput):
    code = "unknown_metric"


class DepositRequired(MalformedInput):
    """``createJob`` must be the ``execLayerData`` of a portal deposit."""

    code = "deposit_required"


class UnknownQuery(MalformedInput):
    """An inspect path that matches no declared query."""

    code = "unknown_query"


# ---- not found -----------------------------------------------------------------------------
class NotFound(NotFoundError):
    """A well-formed query for something that does not exist (yet), e.g. a future round."""

    code = "not_found"


class NoSuchJob(NotFoundError):
    code = "no_such_job"


class NoSuchUpload(NotFoundError):
    code = "no_such_upload"


class BlobNotFound(NotFoundError):
    """A model or shard named by CID is not stored in the DApp."""

    code = "blob_not_found"


class NoCommitment(NotFoundError):
    code = "no_commitment"


# ---- permission ----------------------------------------------------------------------------
class NotSponsor(PermissionDenied):
    code = "not_sponsor"


# ---- timing --------------------------------------------------------------------------------
class WindowNotOpen(TimingError):
    code = "window_not_open"


class WindowClosed(TimingError):
    code = "window_closed"


class HoldoutPending(TimingError):
    code = "holdout_pending"


class RoundNotCurrent(TimingError):
    code = "round_not_current"


class RoundAlreadyClosed(TimingError):
    code = "round_closed"


class RoundNotOver(TimingError):
    code = "round_not_over"


class UploadExpired(TimingError):
    code = "upload_expired"


# ---- conflict ------------------------------------------------------------------------------
class BlobExists(ConflictError):
    code = "blob_exists"


class UploadInProgress(ConflictError):
    code = "upload_in_progress"


class BlobInUse(ConflictError):
    """A blob still referenced or within its keep time, or an upload not yet abandoned."""

    code = "blob_in_use"


class ChunkOutOfOrder(ConflictError):
    code = "chunk_out_of_order"


class DuplicateChunk(ConflictError):
    code = "duplicate_chunk"


class AlreadyCommitted(ConflictError):
    code = "already_committed"


class AlreadyRevealed(ConflictError):
    code = "already_revealed"


class HoldoutAlreadyRevealed(ConflictError):
    code = "holdout_already_revealed"


# ---- mismatch ------------------------------------------------------------------------------
class CidMismatch(MismatchError):
    """The bytes uploaded do not import to the CID they were announced as."""

    code = "cid_mismatch"


class ChunkExceedsSize(MismatchError):
    code = "chunk_exceeds_size"


class HoldoutMismatch(MismatchError):
    code = "holdout_mismatch"


class CommitmentMismatch(MismatchError):
    code = "commitment_mismatch"


# ---- model rejected ------------------------------------------------------------------------
class ModelTooLarge(ModelRejected):
    code = "model_too_large"


class ModelUnparseable(ModelRejected):
    """Not an ONNX ModelProto, or one whose tensors do not hold the data their dims need."""

    code = "model_unparseable"


class TooManyNodes(ModelRejected):
    code = "too_many_nodes"


class OperatorNotAllowed(ModelRejected):
    code = "operator_not_allowed"


class ModelFeatureNotAllowed(ModelRejected):
    """Functions, subgraphs, external or sparse data, other domains, IR/opset or dtypes."""

    code = "model_feature_not_allowed"


class ModelIoInvalid(ModelRejected):
    """The model must take one float32 ``[N, d]`` input and give one float output."""

    code = "model_io_invalid"


class GraphMismatch(ModelRejected):
    """A submission's graph differs from the job's in something other than weight values."""

    code = "graph_mismatch"


class InitializerMismatch(ModelRejected):
    """A submission's initializers differ from the job's in name, shape, dtype or constant."""

    code = "initializer_mismatch"


class NonFiniteWeights(ModelRejected):
    code = "non_finite_weights"


class ModelInvalid(ModelRejected):
    """ONNX shape inference or ONNX Runtime refused the graph (e.g. shapes that do not chain)."""

    code = "model_invalid"


class ModelRunFailed(ModelRejected):
    code = "model_run_failed"


class ModelOutputInvalid(ModelRejected):
    """The output's shape does not fit the metric (e.g. ``[N, 3]`` for a regression)."""

    code = "model_output_invalid"


# ---- shard rejected ------------------------------------------------------------------------
class ShardInvalid(ShardRejected):
    """Not an ``.npz`` of finite float32 ``X [rows, d]`` and ``y [rows]`` fit for the metric."""

    code = "shard_invalid"


class ShardModelMismatch(ShardRejected):
    """The shard does not fit the model: feature count, or labels past the model's classes."""

    code = "shard_model_mismatch"


# ---- limits --------------------------------------------------------------------------------
class ShardTooLarge(LimitExceeded):
    code = "shard_too_large"


class BlobTooLarge(LimitExceeded):
    code = "blob_too_large"


class QuotaExceeded(LimitExceeded):
    code = "quota_exceeded"


class TooManyUploads(LimitExceeded):
    code = "too_many_uploads"


class RoundFull(LimitExceeded):
    code = "round_full"


class WorkBudgetExceeded(LimitExceeded):
    code = "work_budget_exceeded"


class MemoryBudgetExceeded(LimitExceeded):
    code = "memory_budget_exceeded"


class OutputTooLarge(LimitExceeded):
    """A notice, voucher or report of this input would exceed what the DApp emits
    (``dapp.app.MAX_REPORT_BYTES``, ``MAX_OUTPUT_BYTES``): the input is rejected instead."""

    code = "output_too_large"


# ---- funds ---------------------------------------------------------------------------------
class InsufficientBalance(FundsError):
    code = "insufficient_balance"


# ---- job spec ------------------------------------------------------------------------------
class InvalidJobSpec(JobSpecError):
    code = "invalid_job_spec"


class UnknownPolicy(JobSpecError):
    """The spec names a payout policy or an aggregation rule this DApp does not have."""

    code = "unknown_policy"


# ---- internal ------------------------------------------------------------------------------
class InternalError(InternalFailure):
    """A bug in the DApp, not in the input. The traceback goes to the node's log."""

    code = "internal_error"


class AggregationWeightsInvalid(InternalFailure):
    """FedAvg was given malformed weights; inputs never set them, so this is a bug."""

    code = "aggregation_weights_invalid"


class OutputRefused(InternalFailure):
    """The guest rollup API refused an output or report of this input (``dapp.service``):
    the input is rejected, so the machine rolls back, and the DApp keeps serving."""

    code = "output_refused"


#: Every live code -> its class.
ERROR_CODES: Final[Mapping[str, type[Rejected]]] = MappingProxyType(_REGISTRY)
