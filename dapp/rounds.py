"""A round's inputs up to its close (``docs/architecture.md`` §3 steps 3–5), timed by
``block_timestamp``: commit → held-out reveal (sponsor) → model reveals.

Each input does at most one evaluation: the held-out reveal scores the round's global model
(the baseline), a model reveal scores that one model. Closing (``dapp.settlement``) only
aggregates and pays.
"""

from __future__ import annotations

from dataclasses import replace

from deml_protocol.commitments import holdout_commitment, submission_commitment
from deml_protocol.errors import (
    AlreadyCommitted,
    AlreadyRevealed,
    BadArgument,
    CommitmentMismatch,
    HoldoutAlreadyRevealed,
    HoldoutMismatch,
    HoldoutPending,
    NoCommitment,
    NotSponsor,
    RoundAlreadyClosed,
    RoundFull,
    RoundNotCurrent,
    WindowClosed,
    WindowNotOpen,
)

from . import ledger, storage
from .blobs import canonical_cid
from .context import Context
from .copies import is_near, weights_sketch
from .jobs import get_job
from .records import Job, Round, Submission
from .scoring import checked_model, score, stored_shard, weights_fingerprint


def current_round(ctx: Context, job_id: int, index: int) -> tuple[Job, Round]:
    job = get_job(ctx.state, job_id)
    if index >= job.spec.rounds:
        raise RoundNotCurrent(f"job {job_id} has rounds 0 to {job.spec.rounds - 1}")
    if index < job.current_round:
        raise RoundAlreadyClosed(f"round {index} of job {job_id} is closed")
    if index > job.current_round:
        raise RoundNotCurrent(f"job {job_id} is in round {job.current_round}, not {index}")
    return job, ctx.state.rounds[(job_id, index)]


def handle_commit_submission(
    ctx: Context,
    *,
    jobId: int,
    round: int,
    commitment: bytes,
) -> None:
    job, rnd = current_round(ctx, jobId, round)
    now = ctx.meta.block_timestamp
    if now >= rnd.commit_end_ts:
        raise WindowClosed(f"the commit window of round {round} closed at {rnd.commit_end_ts}")
    if commitment == bytes(32):
        raise BadArgument(
            "the commitment is zero; send keccak256(abi.encode(modelCid, salt, "
            "sender, jobId, round))"
        )
    key = (jobId, round, ctx.sender)
    if key in ctx.state.submissions:
        raise AlreadyCommitted(f"you already committed in round {round} of job {jobId}")
    if len(rnd.committers) >= job.spec.max_submissions:
        raise RoundFull(f"round {round} already has {job.spec.max_submissions} commitments")
    bond = job.spec.commit_bond
    if bond:
        ledger.debit(ctx.state, job.asset, ctx.sender, bond)
    # Room for the model you will reveal, promised now or the commit is refused (bond kept).
    storage.reserve(ctx.state, ctx.config.blobs, ctx.sender, job.model_reserve, checked=True)
    ctx.state.submissions[key] = Submission(
        client=ctx.sender,
        commitment=commitment,
        bond=bond,
        commit_input=ctx.meta.input_index,
        reserved=job.model_reserve,
    )
    ctx.state.rounds[(jobId, round)] = replace(rnd, committers=rnd.committers + (ctx.sender,))


def handle_reveal_holdout(
    ctx: Context,
    *,
    jobId: int,
    round: int,
    dataCid: str,
    salt: bytes,
) -> None:
    job, rnd = current_round(ctx, jobId, round)
    now = ctx.meta.block_timestamp
    if ctx.sender != job.sponsor:
        raise NotSponsor(f"only the sponsor {job.sponsor} reveals the held-out shard")
    if now < rnd.commit_end_ts:
        raise WindowNotOpen(
            f"the shard is revealed after the commit window, from {rnd.commit_end_ts}; now is {now}"
        )
    if now >= rnd.holdout_end_ts:
        raise WindowClosed(f"the holdout window closed at {rnd.holdout_end_ts}")
    if rnd.holdout_cid is not None:
        raise HoldoutAlreadyRevealed(f"round {round}'s shard is already revealed")
    data_cid = canonical_cid(dataCid)
    if holdout_commitment(data_cid, salt) != job.spec.holdout_commitments[round]:
        raise HoldoutMismatch(
            f"keccak256(abi.encode(dataCid, salt)) is not the commitment posted for round {round}"
        )
    graph, metric = job.spec.model_cid, job.spec.metric
    shard = stored_shard(ctx, data_cid, metric, max_rows=job.spec.holdout_rows)
    baseline = score(ctx, graph, checked_model(ctx, graph, rnd.model_cid), shard, metric)
    storage.pin(ctx.state, data_cid)  # until the round closes
    storage.claim_reservation(ctx.state, job.sponsor, data_cid, job.shard_reserve)
    ctx.state.rounds[(jobId, round)] = replace(rnd, holdout_cid=data_cid, baseline=baseline.score)


def handle_reveal_submission(
    ctx: Context,
    *,
    jobId: int,
    round: int,
    modelCid: str,
    salt: bytes,
) -> None:
    job, rnd = current_round(ctx, jobId, round)
    _check_reveal_window(rnd, ctx.meta.block_timestamp)
    sub = ctx.state.submissions.get((jobId, round, ctx.sender))
    if sub is None:
        raise NoCommitment(f"you made no commitment in round {round} of job {jobId}")
    if sub.model_cid is not None:
        raise AlreadyRevealed(f"you already revealed {sub.model_cid}")
    model_cid = canonical_cid(modelCid)
    if submission_commitment(model_cid, salt, ctx.sender, jobId, round) != sub.commitment:
        raise CommitmentMismatch(
            "keccak256(abi.encode(modelCid, salt, sender, jobId, round)) "
            "is not your commitment: check the CID and the salt"
        )
    graph, metric = job.spec.model_cid, job.spec.metric
    model = checked_model(ctx, graph, model_cid)
    fingerprint = weights_fingerprint(model)
    base = checked_model(ctx, graph, rnd.model_cid)  # the round's global model
    is_copy = _copies_an_earlier_model(ctx, jobId, round, fingerprint) or is_near(model, base)
    ctx.state.fingerprints.setdefault((jobId, fingerprint), ctx.sender)
    model_score = None
    if rnd.holdout_cid is not None:
        shard = stored_shard(ctx, rnd.holdout_cid, metric, max_rows=job.spec.holdout_rows)
        model_score = score(ctx, graph, model, shard, metric).score
    storage.pin(ctx.state, model_cid)  # until the round closes (FedAvg reads it)
    storage.claim_reservation(ctx.state, ctx.sender, model_cid, sub.reserved)
    ctx.state.submissions[(jobId, round, ctx.sender)] = replace(
        sub,
        model_cid=model_cid,
        reveal_input=ctx.meta.input_index,
        score=model_score,
        is_copy=is_copy,
        fingerprint=fingerprint,
        sketch=weights_sketch(model, base),
    )


def _copies_an_earlier_model(ctx: Context, job_id: int, index: int, fingerprint: bytes) -> bool:
    """The same weights as a global model of the job (or a model aggregated into one), or as
    a model *someone else* showed in an earlier round. The first to reveal weights owns them
    until the close, where commit order decides among this round's peers (``dapp.copies``).
    Your own earlier model is yours if it was never aggregated: when the global model did
    not move (no shard, or nobody accepted), training again on the same data may give the
    same bytes, and that is no copy."""
    owner = ctx.state.fingerprints.get((job_id, fingerprint))
    if owner is None or owner == ctx.sender:
        return False
    if owner == "global":
        return True
    # Shown by its owner in an earlier round: a copy, even if the owner reveals it again
    # now (first) and the copier committed first. Bounded: one lookup per earlier round.
    for earlier in range(index):
        shown = ctx.state.submissions.get((job_id, earlier, owner))
        if shown is not None and shown.fingerprint == fingerprint:
            return True
    peer = ctx.state.submissions.get((job_id, index, owner))
    return peer is None or peer.fingerprint != fingerprint


def _check_reveal_window(rnd: Round, now: int) -> None:
    if now < rnd.commit_end_ts:
        raise WindowNotOpen(f"models are revealed after the commit window ({rnd.commit_end_ts})")
    if now >= rnd.reveal_end_ts:
        raise WindowClosed(f"the reveal window closed at {rnd.reveal_end_ts}")
    if rnd.holdout_cid is None and now < rnd.holdout_end_ts:
        raise HoldoutPending(
            f"the sponsor may still reveal the shard until "
            f"{rnd.holdout_end_ts}; reveal your model after that or after "
            "the shard is revealed"
        )
