"""Inspect views of jobs: ``jobs``, ``jobs/<id>``, ``jobs/<id>/rounds/<r>``,
``jobs/<id>/leaderboard`` and ``models/<id>/latest``. Money as decimal strings."""

from __future__ import annotations

from typing import Any

from .errors import NotFound
from .jobs import Job, Round, Submission, get_job, job_detail, job_summary, parse_job_id
from .state import State


def query_jobs(state: State, rest: list[str]) -> Any:
    if not rest:
        return [job_summary(job) for _, job in sorted(state.jobs.items())]
    job = get_job(state, parse_job_id(rest[0]))
    if len(rest) == 1:
        return job_detail(job) | {
            "rounds": [round_view(state, job, r) for r in range(_rounds_opened(job))]
        }
    if rest[1:] == ["leaderboard"]:
        return leaderboard(state, job)
    if len(rest) == 3 and rest[1] == "rounds" and rest[2].isascii() and rest[2].isdigit():
        index = int(rest[2])
        if (job.id, index) not in state.rounds:
            raise NotFound(f"job {job.id} has no round {index} yet")
        return round_view(state, job, index)
    raise NotFound("use jobs, jobs/<id>, jobs/<id>/rounds/<r> or jobs/<id>/leaderboard")


def query_models(state: State, rest: list[str]) -> Any:
    if len(rest) != 2 or rest[1] != "latest":
        raise NotFound("use models/<job id>/latest")
    job = get_job(state, parse_job_id(rest[0]))
    blob = state.blobs[job.global_model_cid]
    return {
        "job": job.id,
        "round": min(job.current_round, job.spec.rounds),
        "cid": job.global_model_cid,
        "size": blob.size,
    }


def _rounds_opened(job: Job) -> int:
    return min(job.current_round + 1, job.spec.rounds)


def round_view(state: State, job: Job, index: int) -> dict[str, Any]:
    rnd: Round = state.rounds[(job.id, index)]
    subs = [state.submissions[(job.id, index, c)] for c in rnd.committers]
    return {
        "job": job.id,
        "round": index,
        "budget": str(rnd.budget),
        "model_cid": rnd.model_cid,
        "start_ts": rnd.start_ts,
        "commit_end_ts": rnd.commit_end_ts,
        "holdout_end_ts": rnd.holdout_end_ts,
        "reveal_end_ts": rnd.reveal_end_ts,
        "holdout_cid": rnd.holdout_cid,
        "baseline": rnd.baseline,
        "closed": rnd.is_closed,
        "new_model_cid": rnd.new_model_cid,
        "submissions": [_submission_view(s) for s in subs],
    }


def _submission_view(sub: Submission) -> dict[str, Any]:
    return {
        "client": sub.client,
        "commitment": "0x" + sub.commitment.hex(),
        "bond": str(sub.bond),
        "model_cid": sub.model_cid,
        "score": sub.score,
        "is_copy": sub.is_copy,
    }


def leaderboard(state: State, job: Job) -> list[dict[str, Any]]:
    """Clients by best score over the job's rounds (ties: earlier reveal first)."""
    best: dict[str, tuple[int, int, int]] = {}
    for index in range(_rounds_opened(job)):
        rnd = state.rounds[(job.id, index)]
        for client in rnd.committers:
            sub = state.submissions[(job.id, index, client)]
            if sub.score is None or sub.reveal_input is None:
                continue
            gain = sub.score - (rnd.baseline or 0)
            entry = (sub.score, -sub.reveal_input, gain)
            if client not in best or entry > best[client]:
                best[client] = entry
    ranked = sorted(best.items(), key=lambda item: (item[1][0], item[1][1]), reverse=True)
    return [
        {"rank": rank + 1, "client": client, "best_score": score, "gain": gain}
        for rank, (client, (score, _, gain)) in enumerate(ranked)
    ]
