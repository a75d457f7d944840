"""``deml job report --plot``: the baseline and each submission's score per round, and the
payouts per client, drawn with matplotlib (Agg: no display needed). Imported only by that
command; ``pip install 'deml-console[plot]'``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

__all__ = ["MissingExtra", "plot_job"]


class MissingExtra(ImportError):
    code: ClassVar[str] = "missing_extra"


def plot_job(data: dict[str, Any], path: Path) -> None:
    """Two panels: scores by round (baseline line, one marker series per client), payouts."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingExtra("plots need matplotlib: pip install 'deml-console[plot]'") from exc
    figure, (scores, payouts) = plt.subplots(1, 2, figsize=(11, 4.2))
    color = _scores(scores, data)
    asset = data["asset"]
    unit = Decimal(10) ** int(asset["decimals"])
    clients = sorted(data["payouts"])
    amounts = [float(Decimal(int(data["payouts"][c])) / unit) for c in clients]
    payouts.bar([c[:8] + "…" for c in clients], amounts, color=[color[c] for c in clients])
    payouts.set(title="payouts", ylabel=asset["symbol"])
    payouts.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _scores(axes: Any, data: dict[str, Any]) -> dict[str, str]:
    """The baseline line and one marker series per client; each client's colour."""
    job = data["job"]
    rounds = [r for r in job["opened_rounds"] if r["baseline"] is not None]
    axes.plot(
        [r["round"] for r in rounds], [r["baseline"] for r in rounds], "k--o", label="baseline"
    )
    by_client: dict[str, list[tuple[int, int]]] = {}
    for r in job["opened_rounds"]:
        for s in r["submissions"]:
            if s["score"] is not None:
                by_client.setdefault(s["client"], []).append((r["round"], s["score"]))
    everyone = sorted(set(by_client) | set(data["payouts"]))
    color = {client: f"C{i % 9 + 1}" for i, client in enumerate(everyone)}  # C0: baseline
    for n, (client, points) in enumerate(sorted(by_client.items())):
        xs, ys = zip(*points, strict=True)
        nudged = [x + 0.04 * (n - len(by_client) / 2) for x in xs]  # equal scores stay visible
        axes.plot(nudged, ys, "o", color=color[client], label=client[:8] + "…")
    axes.set(
        title=f"job {job['id']}: {job['metric']} score by round",
        xlabel="round",
        ylabel="score (higher is better)",
    )
    axes.set_xticks(range(job["rounds"]))
    axes.set_xlim(-0.5, job["rounds"] - 0.5)
    axes.legend(fontsize="small")
    return color
