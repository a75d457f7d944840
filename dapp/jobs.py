"""Posting a training job, and opening its rounds.

A job is posted atomically with its reward: ``createJob(spec…)`` as the ``execLayerData`` of
an EtherPortal or ERC20Portal deposit (the deposit is the reward), or
``createJobFromBalance(asset, amount, spec…)`` from the sponsor's in-app balance (asset = the
zero address for ether). Nothing stays escrowed unless the whole spec passes
(``dapp.job_spec``), since the input is all-or-nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from deml_protocol import notices
from deml_protocol.errors import DepositRequired, InvalidJobSpec, NoSuchJob

from . import ledger, payouts, storage
from .context import Context
from .job_spec import parse_spec
from .records import Amount, Job, Round
from .scoring import scorer_for, weights_fingerprint
from .state import State

__all__ = ["get_job", "handle_create_job", "handle_create_job_from_balance", "open_round"]


def handle_create_job(ctx: Context, **spec_args: Any) -> None:
    if ctx.deposit is None:
        raise DepositRequired(
            "send createJob as the execLayerData of an EtherPortal or "
            "ERC20Portal deposit (the deposit is the reward), or use "
            "createJobFromBalance"
        )
    _create(ctx, ctx.deposit.asset, ctx.deposit.amount, spec_args)


def handle_create_job_from_balance(
    ctx: Context, *, asset: str, amount: int, **spec_args: Any
) -> None:
    _create(ctx, asset.lower(), Amount(amount), spec_args)


def _create(ctx: Context, asset: str, amount: Amount, spec_args: dict[str, Any]) -> None:
    if amount <= 0:
        raise InvalidJobSpec("the reward must be positive")
    ledger.debit(ctx.state, asset, ctx.sender, amount)  # into escrow; first, as it is cheap
    spec = parse_spec(ctx, **spec_args)
    if amount < spec.rounds:
        raise InvalidJobSpec(
            f"a reward of {amount} cannot fund {spec.rounds} rounds; "
            "give at least one base unit per round"
        )
    job_id = ctx.state.counters.get("next_job_id", 1)
    ctx.state.counters["next_job_id"] = job_id + 1
    graph = scorer_for(ctx, spec.model_cid).graph
    job = Job(
        id=job_id,
        sponsor=ctx.sender,
        asset=asset,
        escrow=amount,
        spec=spec,
        created_ts=ctx.meta.block_timestamp,
        created_input=ctx.meta.input_index,
        current_round=0,
        global_model_cid=spec.model_cid,
        shard_reserve=storage.shard_reserve(spec.holdout_rows, graph.n_features),
        model_reserve=storage.model_reserve(ctx.state.blobs[spec.model_cid].size),
    )
    storage.pin(ctx.state, spec.model_cid)  # the job's graph, for the job's life
    storage.pin(ctx.state, spec.model_cid)  # ... and its global model, until replaced
    open_round(ctx, job, 0, start_ts=ctx.meta.block_timestamp)
    ctx.state.fingerprints[(job_id, weights_fingerprint(graph))] = "global"
    ctx.notice(
        notices.JOB_CREATED.encode(
            job_id, ctx.sender, asset, amount, spec.model_cid, spec.metric.value, spec.rounds
        )
    )


def open_round(ctx: Context, job: Job, index: int, *, start_ts: int) -> None:
    """Start round ``index`` at ``start_ts``; its budget takes what earlier rounds carried.
    Room for its shard is promised to the sponsor: checked for the first round (the job is
    refused if there is none), never for later ones (a close must not fail for room)."""
    storage.reserve(ctx.state, ctx.config.blobs, job.sponsor, job.shard_reserve, checked=index == 0)
    spec = job.spec
    budget = Amount(payouts.round_budgets(job.escrow, spec.rounds)[index] + job.carried)
    commit_end = start_ts + spec.commit_s
    holdout_end = commit_end + spec.holdout_s
    ctx.state.rounds[(job.id, index)] = Round(
        job_id=job.id,
        index=index,
        budget=budget,
        model_cid=job.global_model_cid,
        start_ts=start_ts,
        commit_end_ts=commit_end,
        holdout_end_ts=holdout_end,
        reveal_end_ts=holdout_end + spec.reveal_s,
    )
    ctx.state.jobs[job.id] = replace(job, current_round=index, carried=Amount(0))


def get_job(state: State, job_id: int) -> Job:
    job = state.jobs.get(job_id)
    if job is None:
        raise NoSuchJob(f"there is no job {job_id}; inspect `jobs` lists them")
    return job
