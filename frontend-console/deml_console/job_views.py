"""How jobs look in a terminal (Rich): ``deml jobs``, ``job show``, ``job status``, a closed
round, rewards. Each function renders data a command already fetched (what ``--json`` prints)
and does no I/O but printing."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from .assets import Asset
from .output import table
from .phases import describe_seconds, phase_of, phase_window

__all__ = [
    "render_closed",
    "window_text",
    "render_jobs",
    "render_show",
    "render_status",
]


def _amount(value: int | str, asset: dict[str, Any]) -> str:
    """``asset`` is an :meth:`~deml_console.assets.Asset.view`."""
    return Asset(asset["address"], asset["symbol"], int(asset["decimals"])).show(value)


def _short(address: str) -> str:
    return address[:8] + "…" + address[-4:] if len(address) > 14 else address


def _round_text(job: dict[str, Any]) -> str:
    """Rounds count from 0 (as ``--round`` takes them); a finished job shows all done."""
    if job["status"] == "finished":
        return f"{job['rounds']} of {job['rounds']} done"
    return f"{job['current_round']} (of {job['rounds']})"


def _short_cid(cid: str | None) -> str:
    return "—" if not cid else cid[:12] + "…" + cid[-6:]


def window_text(rnd: dict[str, Any], now: int) -> str:
    phase = phase_of(rnd, now)  # type: ignore[arg-type]
    if phase.value == "closed":
        return "closed"
    _, closes = phase_window(rnd, phase)  # type: ignore[arg-type]
    left = "" if closes is None else f", {describe_seconds(closes - now)} left"
    return f"{phase.value}{left}"


def render_show(console: Console, data: dict[str, Any]) -> None:
    job, now, asset = data["job"], data["now"], data["asset"]
    console.print(
        f"job {job['id']} ({job['status']}): metric {job['metric']}, "
        f"round {_round_text(job)}, "
        f"escrow {_amount(job['escrow'], asset)}, bond {_amount(job['commit_bond'], asset)}",
        highlight=False,
    )
    console.print(f"model {job['global_model_cid']}\nrecipe {job['recipe']}", highlight=False)
    console.print(
        f"windows: commit {describe_seconds(job['commit_seconds'])}, "
        f"holdout {describe_seconds(job['holdout_seconds'])}, "
        f"reveal {describe_seconds(job['reveal_seconds'])}"
        f"; a model must beat the baseline by {job['min_gain']}; payout {job['payout']}, "
        f"aggregation {job['aggregation']}"
        + (f" ({job['trim_percent']}% trimmed)" if job["aggregation"] == "trimmed_mean" else ""),
        highlight=False,
    )
    if job["status"] == "open" and job["opened_rounds"]:
        console.print(f"now: {window_text(job['opened_rounds'][-1], now)}", highlight=False)


def render_status(console: Console, data: dict[str, Any]) -> None:
    render_show(console, data)
    job, now, asset = data["job"], data["now"], data["asset"]
    rows = [
        (
            r["round"],
            window_text(r, now),
            "—" if r["baseline"] is None else r["baseline"],
            "revealed" if r["holdout_cid"] else "—",
            len(r["submissions"]),
            _short_cid(r["new_model_cid"]),
        )
        for r in job["opened_rounds"]
    ]
    columns = ("round", "window", "baseline", "shard", "submissions", "new model")
    console.print(table("Rounds", columns, rows))
    subs = [
        (
            r["round"],
            _short(s["client"]),
            "—" if s["score"] is None else s["score"],
            "copy" if s["is_copy"] else "",
        )
        for r in job["opened_rounds"]
        for s in r["submissions"]
    ]
    if subs:
        console.print(table("Submissions", ("round", "client", "score", ""), subs))
    board = [
        (e["rank"], _short(e["client"]), e["best_score"], e["gain"]) for e in data["leaderboard"]
    ]
    if board:
        console.print(table("Leaderboard", ("rank", "client", "best score", "gain"), board))
    paid = [(_short(who), _amount(amount, asset)) for who, amount in data["payouts"].items()]
    if paid:
        console.print(table("Payouts", ("client", "paid"), paid))
    console.print(
        f"paid {_amount(job['paid'], asset)}, refunded {_amount(job['refunded'], asset)}",
        highlight=False,
    )


def render_closed(console: Console, fields: dict[str, Any], asset: dict[str, Any]) -> None:
    console.print(
        f"round {fields['round']} of job {fields['jobId']} closed: "
        + (f"baseline {fields['baseline']}, " if fields["holdoutRevealed"] else "no shard, ")
        + f"new model {fields['newModelCid'] or '(unchanged)'}",
        highlight=False,
    )
    rows = [
        (_short(c), s, "yes" if a else "no")
        for c, s, a in zip(fields["clients"], fields["scores"], fields["accepted"], strict=True)
    ]
    if rows:
        console.print(table(None, ("client", "score", "accepted"), rows))
    paid = [
        (_short(w), _amount(a, asset))
        for w, a in zip(fields["paid"], fields["amounts"], strict=True)
    ]
    if paid:
        console.print(table(None, ("paid", "amount"), paid))


def render_jobs(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("no jobs yet: `deml job create` posts one")
        return
    cells = [
        (
            r["id"],
            r["status"],
            r["metric"],
            _round_text(r),
            r["reward"],
            r["window"],
        )
        for r in rows
    ]
    console.print(table("Jobs", ("job", "status", "metric", "round", "escrow", "window"), cells))
