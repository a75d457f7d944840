"""The round protocol (ARCHITECTURE.md §3 steps 3–6), timed by ``block_timestamp``.

commit → held-out reveal (sponsor) → model reveals → close (anyone). Each input does at most
one evaluation: the held-out reveal scores the round's global model (the baseline), a model
reveal scores that one model, and the close only aggregates and pays.
"""

from __future__ import annotations

from dataclasses import replace

from deml_protocol import notices
from deml_protocol.commitments import holdout_commitment, submission_commitment

from . import ledger, payouts
from .blobs import canonical_cid, store_derived_blob
from .context import Context
from .errors import BadArgument, Rejected
from .fedavg import fedavg
from .jobs import Job, Round, Submission, get_job, open_round
from .scoring import checked_model, score, scorer_for, stored_shard, weights_fingerprint


class WindowNotOpen(Rejected):
    code = "window_not_open"


class WindowClosed(Rejected):
    code = "window_closed"


class HoldoutPending(Rejected):
    code = "holdout_pending"


class NotSponsor(Rejected):
    code = "not_sponsor"


class HoldoutMismatch(Rejected):
    code = "holdout_mismatch"


class HoldoutAlreadyRevealed(Rejected):
    code = "holdout_already_revealed"


class AlreadyCommitted(Rejected):
    code = "already_committed"


class RoundFull(Rejected):
    code = "round_full"


class NoCommitment(Rejected):
    code = "no_commitment"


class CommitmentMismatch(Rejected):
    code = "commitment_mismatch"


class AlreadyRevealed(Rejected):
    code = "already_revealed"


class RoundNotCurrent(Rejected):
    code = "round_not_current"


class RoundAlreadyClosed(Rejected):
    code = "round_closed"


class RoundNotOver(Rejected):
    code = "round_not_over"


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
    round: int,  # noqa: N803, A002
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
    ctx.state.submissions[key] = Submission(ctx.sender, commitment, bond, ctx.meta.input_index)
    ctx.state.rounds[(jobId, round)] = replace(rnd, committers=rnd.committers + (ctx.sender,))


def handle_reveal_holdout(
    ctx: Context,
    *,
    jobId: int,
    round: int,  # noqa: N803, A002
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
    ctx.state.rounds[(jobId, round)] = replace(rnd, holdout_cid=data_cid, baseline=baseline.score)


def handle_reveal_submission(
    ctx: Context,
    *,
    jobId: int,
    round: int,  # noqa: N803, A002
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
    fingerprint = (jobId, weights_fingerprint(model))
    is_copy = fingerprint in ctx.state.fingerprints  # a global model, or someone's earlier reveal
    if not is_copy:
        ctx.state.fingerprints[fingerprint] = ctx.sender
    model_score = None
    if rnd.holdout_cid is not None:
        shard = stored_shard(ctx, rnd.holdout_cid, metric, max_rows=job.spec.holdout_rows)
        model_score = score(ctx, graph, model, shard, metric).score
    if sub.bond:
        ledger.credit(ctx.state, job.asset, ctx.sender, sub.bond)
    ctx.state.submissions[(jobId, round, ctx.sender)] = replace(
        sub,
        model_cid=model_cid,
        reveal_input=ctx.meta.input_index,
        score=model_score,
        is_copy=is_copy,
    )


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


def handle_close_round(ctx: Context, *, jobId: int, round: int) -> None:  # noqa: N803, A002
    job, rnd = current_round(ctx, jobId, round)
    now = ctx.meta.block_timestamp
    if now < rnd.reveal_end_ts:
        raise RoundNotOver(f"round {round} can be closed from {rnd.reveal_end_ts}; now is {now}")
    subs = [ctx.state.submissions[(jobId, round, c)] for c in rnd.committers]
    revealed = sorted(
        (s for s in subs if s.model_cid is not None), key=lambda s: s.reveal_input or 0
    )
    forfeited = sum(s.bond for s in subs if s.model_cid is None)
    budget = rnd.budget + forfeited
    if rnd.baseline is not None:
        winners = _accepted(revealed, rnd.baseline, job.spec.min_gain)
        shares, carried = payouts.proportional(
            budget, [(s.score or 0) - rnd.baseline for s in winners]
        )
        new_model = _aggregate(ctx, job, rnd, winners)
    else:  # no shard: models are checked, not scored, and passing ones share equally
        winners = [s for s in revealed if not s.is_copy]
        shares, carried = payouts.equal(budget, len(winners))
        new_model = rnd.model_cid
    for sub, amount in zip(winners, shares, strict=True):
        if amount:
            ledger.pay(ctx, job.asset, sub.client, amount)
    _finish_round(ctx, job, rnd, revealed, winners, shares, carried, new_model)


def _accepted(revealed: list[Submission], baseline: int, min_gain: int) -> list[Submission]:
    """Beat the baseline by at least ``max(min_gain, 1)``; copies never count."""
    need = max(min_gain, 1)
    return [
        s for s in revealed if not s.is_copy and s.score is not None and s.score - baseline >= need
    ]


def _aggregate(ctx: Context, job: Job, rnd: Round, winners: list[Submission]) -> str:
    if not winners:
        return rnd.model_cid
    graph_cid = job.spec.model_cid
    models = (checked_model(ctx, graph_cid, s.model_cid or "") for s in winners)  # one at a time
    new_cid = store_derived_blob(ctx, fedavg(scorer_for(ctx, graph_cid).graph, models))
    fingerprint = weights_fingerprint(checked_model(ctx, graph_cid, new_cid))
    ctx.state.fingerprints.setdefault((job.id, fingerprint), "global")
    return new_cid


def _finish_round(
    ctx: Context,
    job: Job,
    rnd: Round,
    revealed: list[Submission],
    winners: list[Submission],
    shares: list[int],
    carried: int,
    new_model: str,
) -> None:
    now, last = ctx.meta.block_timestamp, rnd.index == job.spec.rounds - 1
    refund = carried if last else 0
    if refund:
        ledger.pay(ctx, job.asset, job.sponsor, refund)
    winner_set = {s.client for s in winners}
    ctx.notice(
        notices.ROUND_CLOSED.encode(
            job.id,
            rnd.index,
            rnd.baseline is not None,
            rnd.baseline or 0,
            [s.client for s in revealed],
            [s.score or 0 for s in revealed],
            [s.client in winner_set for s in revealed],
            new_model,
            [s.client for s in winners],
            shares,
            0 if last else carried,
            refund,
        )
    )
    ctx.state.rounds[(job.id, rnd.index)] = replace(rnd, is_closed=True, new_model_cid=new_model)
    job = replace(
        job,
        global_model_cid=new_model,
        paid=job.paid + sum(shares),
        carried=0 if last else carried,
        refunded=job.refunded + refund,
    )
    if last:
        ctx.state.jobs[job.id] = replace(job, current_round=job.spec.rounds)
    else:
        open_round(ctx, job, rnd.index + 1, start_ts=now)
