"""The records the DApp's state holds: plain, frozen values and nothing else.

This is the leaf of the DApp's imports (it imports only ``deml_protocol``): ``state`` is made
of these records, the rules make and replace them, the views read them. Every record is
frozen (a transaction shares them between the old and the new state, see ``dapp.state``) and
keyword-only (so a new field never silently shifts a positional argument).

Money and scores have their own types, so neither is passed where the other belongs:
:data:`Amount` is base units of an asset (wei, or a token's smallest unit), :data:`Score` an
integer metric score (higher is better, ``dapp.metrics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

from deml_protocol.metrics import Metric

__all__ = ["Amount", "Blob", "Job", "JobSpec", "Round", "Score", "Submission", "Upload"]

#: Base units of an asset: wei for ether, the smallest unit of an ERC-20.
Amount = NewType("Amount", int)
#: An integer metric score; higher is better. Decides money, so never a float.
Score = NewType("Score", int)


@dataclass(frozen=True, slots=True, kw_only=True)
class Blob:
    """A stored, verified blob (its bytes are in ``State.blob_bytes``)."""

    cid: str
    size: int
    uploader: str
    input_index: int
    #: Live references (a job's graph or global model, a revealed shard or model of a round
    #: not yet closed): a pinned blob is never collected (``dapp.storage``).
    pins: int = 0
    #: Block time until which the blob is kept even unpinned: stored + keep time, or last
    #: unpinned + keep time, whichever is later.
    keep_until_ts: int = 0
    #: Bytes of it its uploader paid from a reservation, not yet claimed by a reveal.
    reserved: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Upload:
    """A blob being uploaded in chunks, per (uploader, CID)."""

    cid: str
    uploader: str
    size: int
    chunks: tuple[bytes, ...]
    received: int
    started_ts: int
    #: Of ``received``, the bytes taken from the uploader's reservation (``dapp.storage``).
    reserved: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """A job's parameters as posted and checked (``dapp.job_spec``)."""

    model_cid: str
    recipe: str
    metric: Metric
    holdout_rows: int
    holdout_commitments: tuple[bytes, ...]
    commit_s: int
    holdout_s: int
    reveal_s: int
    min_gain: int
    max_submissions: int
    commit_bond: Amount
    #: Names in ``dapp.policies``: how a round's budget is split, how winners are combined.
    payout: str = "proportional"
    aggregation: str = "fedavg"
    #: ``trimmed_mean``: percent of the models cut at each end, per weight; else 0.
    trim_percent: int = 0

    @property
    def rounds(self) -> int:
        return len(self.holdout_commitments)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    id: int
    sponsor: str
    asset: str
    escrow: Amount
    spec: JobSpec
    created_ts: int
    created_input: int
    #: The round in progress, or ``spec.rounds`` once the job is finished.
    current_round: int
    global_model_cid: str
    #: Storage reserved for each round's shard (sponsor) and each commitment's model (client).
    shard_reserve: int = 0
    model_reserve: int = 0
    #: Budget not yet paid out and not yet assigned to a round (remainders, unclaimed rounds).
    carried: Amount = Amount(0)
    paid: Amount = Amount(0)
    refunded: Amount = Amount(0)

    @property
    def is_finished(self) -> bool:
        return self.current_round >= self.spec.rounds


@dataclass(frozen=True, slots=True, kw_only=True)
class Round:
    """One round's windows (block time, seconds) and outcome. Windows follow each other:
    commit [start, commit_end), holdout [commit_end, holdout_end), reveal until reveal_end;
    model reveals open early once the shard is revealed."""

    job_id: int
    index: int
    budget: Amount
    model_cid: str  # the global model at the start: the baseline
    start_ts: int
    commit_end_ts: int
    holdout_end_ts: int
    reveal_end_ts: int
    committers: tuple[str, ...] = ()  # in commit order
    holdout_cid: str | None = None
    baseline: Score | None = None
    is_closed: bool = False
    new_model_cid: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Submission:
    client: str
    commitment: bytes
    bond: Amount
    commit_input: int
    #: Storage reserved at commit for the model's upload (``dapp.storage``).
    reserved: int = 0
    model_cid: str | None = None
    reveal_input: int | None = None
    score: Score | None = None  # None until scored (or forever, without a shard)
    #: Same weights as a global model or an earlier model in the job, or (decided at the
    #: close) the same or nearly the same weights as a submission committed before it in the
    #: round (``dapp.copies``): never paid or averaged.
    is_copy: bool = False
    #: ``weights_fingerprint`` of the revealed model.
    fingerprint: bytes | None = None
    #: ``dapp.copies.weights_sketch`` of the revealed model.
    sketch: bytes = b""
    #: Paid at the close as an accepted model of a round with a shard (``dapp.settlement``).
    reward: Amount = Amount(0)
