"""What inspect shows of the state: one function per query of ``deml_protocol.queries``.

Views only read. Each takes the state and the query's typed parameters (already parsed by
``deml_protocol.queries.match`` in ``dapp.inspector``) and returns the query's declared
reply. Money is a decimal string.
"""

from __future__ import annotations

import base64
from typing import Final

from deml_protocol import addresses
from deml_protocol.errors import BadArgument, NotFound
from deml_protocol.queries import (
    BalancesReply,
    BlobPageReply,
    BlobReply,
    JobReply,
    JobSummary,
    LatestModelReply,
    LeaderboardEntry,
    RoundReply,
    StateDigestReply,
    StorageReply,
    SubmissionReply,
    UnpinnedBlobReply,
    UploaderReply,
    UploadReply,
)

from .blobs import blob_bytes, canonical_cid
from .config import Config
from .jobs import get_job
from .ledger import balance_of
from .records import Job, Submission
from .state import State
from .storage import free_room

__all__ = [
    "DATA_PAGE_BYTES",
    "balances",
    "blob",
    "blob_data",
    "job",
    "jobs",
    "latest_model",
    "leaderboard",
    "round_view",
    "state_digest",
    "storage",
    "unpinned",
    "uploads",
]

#: Bytes per ``blobs/<cid>/data/<offset>`` page (base64 grows it by 4/3; reports hold 1 MiB).
DATA_PAGE_BYTES: Final = 512 * 1024
#: At most this many entries in ``storage/unpinned`` (soonest collectable first).
MAX_UNPINNED_LISTED: Final = 256


def balances(state: State, *, address: str) -> BalancesReply:
    tokens = {
        asset: str(amount)
        for (asset, holder), amount in sorted(state.balances.items())
        if holder == address and asset != addresses.ETHER
    }
    ether = str(balance_of(state, addresses.ETHER, address))
    return {"address": address, "ether": ether, "erc20": tokens}


def blob(state: State, *, cid: str) -> BlobReply:
    cid = canonical_cid(cid)
    stored = state.blobs.get(cid)
    if stored is not None:
        return {
            "cid": cid,
            "status": "stored",
            "size": stored.size,
            "uploader": stored.uploader,
            "input_index": stored.input_index,
            "pins": stored.pins,
            "keep_until_ts": stored.keep_until_ts,
        }
    uploads: list[UploaderReply] = [
        {"uploader": u.uploader, "size": u.size, "received": u.received}
        for (_, c), u in sorted(state.uploads.items())
        if c == cid
    ]
    return {"cid": cid, "status": "uploading" if uploads else "absent", "uploads": uploads}


def blob_data(state: State, *, cid: str, offset: int) -> BlobPageReply:
    """A page of a stored blob, so anyone can fetch e.g. a new global model from the DApp.
    Verify what you assemble against the CID."""
    data = blob_bytes(state, cid)
    if offset > len(data):
        raise BadArgument(f"offset must be a number from 0 to {len(data)}")
    page = data[offset : offset + DATA_PAGE_BYTES]
    end = offset + len(page)
    return {
        "cid": canonical_cid(cid),
        "size": len(data),
        "offset": offset,
        "data_base64": base64.b64encode(page).decode(),
        "next_offset": end if end < len(data) else None,
    }


def storage(state: State, *, config: Config) -> StorageReply:
    return {
        "total_quota_bytes": config.blobs.total_quota_bytes,
        "held_bytes": state.counters.get("blob_bytes", 0),
        "reserved_bytes": state.counters.get("reserved", 0),
        "free_bytes": max(0, free_room(state, config.blobs)),
    }


def unpinned(state: State) -> list[UnpinnedBlobReply]:
    """Candidates for ``collectBlobs`` (a scan: inspect only, never on an advance)."""
    found = sorted((b.keep_until_ts, cid, b.size) for cid, b in state.blobs.items() if not b.pins)
    return [
        {"cid": cid, "size": size, "keep_until_ts": keep_until}
        for keep_until, cid, size in found[:MAX_UNPINNED_LISTED]
    ]


def uploads(state: State, *, uploader: str) -> list[UploadReply]:
    """An uploader's unfinished uploads, to resume at ``received``."""
    return [
        {"cid": u.cid, "size": u.size, "received": u.received, "started_ts": u.started_ts}
        for (who, _), u in sorted(state.uploads.items())
        if who == uploader
    ]


def jobs(state: State) -> list[JobSummary]:
    return [_job_summary(one) for _, one in sorted(state.jobs.items())]


def job(state: State, *, job_id: int) -> JobReply:
    found = get_job(state, job_id)
    spec = found.spec
    return {
        **_job_summary(found),
        "initial_model_cid": spec.model_cid,
        "recipe": spec.recipe,
        "holdout_rows": spec.holdout_rows,
        "holdout_commitments": ["0x" + c.hex() for c in spec.holdout_commitments],
        "commit_seconds": spec.commit_s,
        "holdout_seconds": spec.holdout_s,
        "reveal_seconds": spec.reveal_s,
        "min_gain": spec.min_gain,
        "max_submissions": spec.max_submissions,
        "commit_bond": str(spec.commit_bond),
        "payout": spec.payout,
        "aggregation": spec.aggregation,
        "trim_percent": spec.trim_percent,
        "created_ts": found.created_ts,
        "carried": str(found.carried),
        "paid": str(found.paid),
        "refunded": str(found.refunded),
        "opened_rounds": [_round(state, found, r) for r in range(_rounds_opened(found))],
    }


def round_view(state: State, *, job_id: int, round: int) -> RoundReply:
    found = get_job(state, job_id)
    if (found.id, round) not in state.rounds:
        raise NotFound(f"job {found.id} has no round {round} yet")
    return _round(state, found, round)


def leaderboard(state: State, *, job_id: int) -> list[LeaderboardEntry]:
    """Clients by best score over the job's rounds (ties: earlier reveal first)."""
    found = get_job(state, job_id)
    best: dict[str, tuple[int, int, int]] = {}
    for index in range(_rounds_opened(found)):
        rnd = state.rounds[(found.id, index)]
        for client in rnd.committers:
            sub = state.submissions[(found.id, index, client)]
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


def latest_model(state: State, *, job_id: int) -> LatestModelReply:
    found = get_job(state, job_id)
    stored = state.blobs[found.global_model_cid]
    return {
        "job": found.id,
        "round": min(found.current_round, found.spec.rounds),
        "cid": found.global_model_cid,
        "size": stored.size,
    }


def state_digest(state: State) -> StateDigestReply:
    """Lets a node or a test compare replicas without dumping the state."""
    return {"state_digest": state.digest()}


def _job_summary(found: Job) -> JobSummary:
    return {
        "id": found.id,
        "sponsor": found.sponsor,
        "asset": found.asset,
        "escrow": str(found.escrow),
        "metric": found.spec.metric.value,
        "rounds": found.spec.rounds,
        "current_round": found.current_round,
        "status": "finished" if found.is_finished else "open",
        "global_model_cid": found.global_model_cid,
    }


def _rounds_opened(found: Job) -> int:
    return min(found.current_round + 1, found.spec.rounds)


def _round(state: State, found: Job, index: int) -> RoundReply:
    rnd = state.rounds[(found.id, index)]
    subs = [state.submissions[(found.id, index, c)] for c in rnd.committers]
    return {
        "job": found.id,
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
        "submissions": [_submission(s) for s in subs],
    }


def _submission(sub: Submission) -> SubmissionReply:
    return {
        "client": sub.client,
        "commitment": "0x" + sub.commitment.hex(),
        "bond": str(sub.bond),
        "model_cid": sub.model_cid,
        "score": sub.score,
        "is_copy": sub.is_copy,
    }
