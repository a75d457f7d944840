"""Closing a round (``docs/architecture.md`` §3 step 6): acceptance, payouts, the next model.

``closeRound`` may be sent by anyone once the reveal window is over. With a revealed shard,
the job's payout policy accepts some of the round's original (not copied) models and splits
the round's budget (plus forfeited bonds) among them, and its aggregation rule makes the next
global model of them (``dapp.policies``); without one, every original model gets an equal
share and the global model stays. Remainders carry to the next round. If nobody is accepted
in the last round, what is left goes to the job's earlier winners in proportion to what they
won (or, if nobody ever won, in equal shares to that round's original models); only what is
still left then (division remainders, or nobody to pay) goes back to the sponsor.
"""

from __future__ import annotations

from dataclasses import replace

from deml_protocol import notices
from deml_protocol.errors import RoundNotOver

from . import ledger, payouts, policies, storage
from .blobs import store_derived_blob
from .context import Context
from .copies import later_copies
from .jobs import open_round
from .records import Amount, Job, Round, Submission
from .rounds import current_round
from .scoring import checked_model, scorer_for, weights_fingerprint

__all__ = ["handle_close_round"]


def handle_close_round(ctx: Context, *, jobId: int, round: int) -> None:
    job, rnd = current_round(ctx, jobId, round)
    now = ctx.meta.block_timestamp
    if now < rnd.reveal_end_ts:
        raise RoundNotOver(f"round {round} can be closed from {rnd.reveal_end_ts}; now is {now}")
    subs = _mark_copies(
        ctx, job, [ctx.state.submissions[(jobId, round, c)] for c in rnd.committers]
    )
    revealed = sorted(
        (s for s in subs if s.model_cid is not None), key=lambda s: s.reveal_input or 0
    )
    originals = [s for s in revealed if not s.is_copy]
    # Bonds come back to revealed originals; unrevealed commitments and copies forfeit theirs
    # into the budget (filling a round with copies costs a bond a slot).
    for sub in subs:
        if sub.bond and sub.model_cid is not None and not sub.is_copy:
            ledger.credit(ctx.state, job.asset, sub.client, sub.bond)
    forfeited = sum(s.bond for s in subs if s.model_cid is None or s.is_copy)
    budget = Amount(rnd.budget + forfeited)
    if rnd.baseline is not None:
        winners, shares, carried = _split(job, rnd, originals, budget)
        for sub, amount in zip(winners, shares, strict=True):
            ctx.state.submissions[(jobId, round, sub.client)] = replace(sub, reward=amount)
        new_model = _aggregate(ctx, job, rnd, winners)
    else:  # no shard: models are checked, not scored, and originals share equally
        winners = originals
        shares, carried = payouts.equal(budget, len(winners))
        new_model = rnd.model_cid
    payees = [(s.client, amount) for s, amount in zip(winners, shares, strict=True)]
    if not winners and rnd.index == job.spec.rounds - 1:
        payees, carried = _leftover(ctx, job, originals, carried)
    for client, amount in payees:
        if amount:
            ledger.pay(ctx, job.asset, client, amount)
    _free_round_storage(ctx, job, rnd, subs, new_model)
    _finish_round(ctx, job, rnd, revealed, winners, payees, carried, new_model)


def _leftover(
    ctx: Context, job: Job, originals: list[Submission], leftover: Amount
) -> tuple[list[tuple[str, Amount]], Amount]:
    """Nobody accepted in the last round: what is left goes to the job's earlier winners (of
    rounds with a shard; the ``maxSubmissions`` who won most) in proportion to what they
    won, or, if nobody ever won, in equal shares to the round's
    original models. Not back to the sponsor, who knows the shards: a shard nobody can beat
    must not pay the escrow back. Returns the payees and what is still left (refunded)."""
    won: dict[str, int] = {}  # a local dict, filled in round then commit order
    for index in range(job.spec.rounds - 1):
        for client in ctx.state.rounds[(job.id, index)].committers:
            reward = ctx.state.submissions[(job.id, index, client)].reward
            if reward:
                won[client] = won.get(client, 0) + reward
    if won:
        # At most maxSubmissions payees: posting priced a close at one voucher per model of
        # a round (dapp.work_budget), and a job of many rounds has more earlier winners.
        # Those who won most (a stable sort: ties go to who won first), listed in the order
        # they first won.
        most = set(sorted(won, key=lambda client: -won[client])[: job.spec.max_submissions])
        clients = [client for client in won if client in most]
        shares, rest = payouts.proportional(leftover, [won[c] for c in clients])
    else:
        clients = [s.client for s in originals]
        shares, rest = payouts.equal(leftover, len(clients))
    return list(zip(clients, shares, strict=True)), rest


def _split(
    job: Job, rnd: Round, originals: list[Submission], budget: Amount
) -> tuple[list[Submission], list[Amount], Amount]:
    """The job's payout policy: who of the round's scored originals is accepted, and how
    ``budget`` is split among them (``dapp.policies``)."""
    policy = policies.payout(job.spec.payout)
    baseline = rnd.baseline or 0
    scored = [s for s in originals if s.score is not None]
    flags = policy.accept([(s.score or 0) - baseline for s in scored], min_gain=job.spec.min_gain)
    winners = [s for s, is_accepted in zip(scored, flags, strict=True) if is_accepted]
    shares, carried = policy.split(budget, [(s.score or 0) - baseline for s in winners])
    return winners, shares, carried


def _free_round_storage(
    ctx: Context, job: Job, rnd: Round, subs: list[Submission], new_model: str
) -> None:
    """The round's shard and models are needed no more; promises not taken up end; the new
    global model replaces the old one; a finished job lets go of its graph and model."""
    for sub in subs:
        if sub.model_cid is None:
            storage.release(ctx.state, sub.client, sub.reserved)
        else:
            storage.unpin(ctx, sub.model_cid)
    if rnd.holdout_cid is None:
        storage.release(ctx.state, job.sponsor, job.shard_reserve)
    else:
        storage.unpin(ctx, rnd.holdout_cid)
    if new_model != rnd.model_cid:
        storage.pin(ctx.state, new_model)
        storage.unpin(ctx, rnd.model_cid)
    if rnd.index == job.spec.rounds - 1:  # finished: kept the keep time, then collectable
        storage.unpin(ctx, job.spec.model_cid)
        storage.unpin(ctx, new_model)


def _mark_copies(ctx: Context, job: Job, subs: list[Submission]) -> list[Submission]:
    """Mark the round's later copies (``dapp.copies``; ``subs`` are in commit order) and make
    each group's first committer the owner of its weights for later rounds."""
    candidates = [s for s in subs if s.model_cid is not None and not s.is_copy]
    copies = later_copies(candidates)
    compared = {s.client for s in candidates}  # one submission per client: not n^2 __eq__
    marked = []
    for sub in subs:
        if sub.client in compared and sub.client not in copies and sub.fingerprint is not None:
            ctx.state.fingerprints[(job.id, sub.fingerprint)] = sub.client
        # The sketch has served (copies are decided once): it leaves the state.
        sub = replace(sub, is_copy=sub.is_copy or sub.client in copies, sketch=b"")
        ctx.state.submissions[(job.id, job.current_round, sub.client)] = sub
        marked.append(sub)
    return marked


def _forget_fingerprints(ctx: Context, job: Job) -> None:
    """A finished job takes no more reveals: the weights it saw leave the hot state (global
    models' fingerprints stay: a few per job). Bounded: rounds x maxSubmissions records."""
    for index in range(job.spec.rounds):
        for client in ctx.state.rounds[(job.id, index)].committers:
            fingerprint = ctx.state.submissions[(job.id, index, client)].fingerprint
            if fingerprint is not None:
                ctx.state.fingerprints.pop((job.id, fingerprint), None)


def _aggregate(ctx: Context, job: Job, rnd: Round, winners: list[Submission]) -> str:
    if not winners:
        return rnd.model_cid
    graph_cid = job.spec.model_cid
    models = (checked_model(ctx, graph_cid, s.model_cid or "") for s in winners)  # one at a time
    rule = policies.aggregation(job.spec.aggregation)
    aggregated = rule.aggregate(
        scorer_for(ctx, graph_cid).graph,
        models,
        count=len(winners),
        trim_percent=job.spec.trim_percent,
    )
    new_cid = store_derived_blob(ctx, aggregated)
    fingerprint = weights_fingerprint(checked_model(ctx, graph_cid, new_cid))
    # Aggregated weights are the job's from now on: in later rounds the new global model
    # and each winner's model are copies, for their authors too (paid once; no new work).
    # Written after _mark_copies, so "global" wins over the author's ownership.
    for sub in winners:
        if sub.fingerprint is not None:
            ctx.state.fingerprints[(job.id, sub.fingerprint)] = "global"
    ctx.state.fingerprints[(job.id, fingerprint)] = "global"
    return new_cid


def _finish_round(
    ctx: Context,
    job: Job,
    rnd: Round,
    revealed: list[Submission],
    winners: list[Submission],
    payees: list[tuple[str, Amount]],
    carried: Amount,
    new_model: str,
) -> None:
    now, last = ctx.meta.block_timestamp, rnd.index == job.spec.rounds - 1
    refund = carried if last else Amount(0)
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
            [client for client, _ in payees],
            [amount for _, amount in payees],
            0 if last else carried,
            refund,
        )
    )
    ctx.state.rounds[(job.id, rnd.index)] = replace(rnd, is_closed=True, new_model_cid=new_model)
    job = replace(
        job,
        global_model_cid=new_model,
        paid=Amount(job.paid + sum(amount for _, amount in payees)),
        carried=Amount(0) if last else carried,
        refunded=Amount(job.refunded + refund),
    )
    if last:
        ctx.state.jobs[job.id] = replace(job, current_round=job.spec.rounds)
        _forget_fingerprints(ctx, job)
    else:
        open_round(ctx, job, rnd.index + 1, start_ts=now)
