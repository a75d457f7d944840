"""``make demo``: the DeML marketplace end to end on the embedded devnet, told through the
``deml`` console: every step is a ``deml`` command, printed as a user would type it in the
demo's directory (where ``.devnet/devnet.json`` tells the console where everything is).

A sponsor escrows 9000 DMLR (the devnet's ERC-20 reward token) for a two-round job on scikit-learn's
breast-cancer data; alice, bob and carol train on private partitions; a copycat downloads
the global model and submits it unchanged. The DApp scores every reveal on the sponsor's
held-out shard, aggregates the winners with FedAvg and pays by voucher; each recipient
executes its vouchers once the epoch is claimed, and anyone verifies the job. It ends with
a table of balances and scores and a plot of the job.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from deml_console.cli import app
from devnet.contracts import balance_of
from devnet.stack import Devnet, DevnetConfig

from .data import write_example_data
from .node_client import Client

TOKEN = 10**18
ESCROW_TOKENS = 9000
WINDOW = 600  # seconds, each of commit / holdout / reveal
EPOCH_LENGTH = 20  # blocks
#: What the sponsor asks of the data owners' training: a few regularised passes from the
#: global model (scikit-learn's LogisticRegression, warm-started), not a fit to convergence
#: on each partition, which overfits it and scores worse on the shard than the average does.
RECIPE = '{"epochs": 5, "l2": 0.01}'
SPONSOR = 1
OWNERS = {"alice": 2, "bob": 3, "carol": 4}
COPYCAT = 5
NAMES = {SPONSOR: "sponsor", **{n: name for name, n in OWNERS.items()}, COPYCAT: "copycat"}
#: Where `make demo` leaves the job's plot (the repository's root; ignored by git).
PLOT = Path("demo-report.png")


class CommandFailed(RuntimeError):
    pass


@dataclass
class Terminal:
    """Runs ``deml`` commands as typed in ``workdir``, printing each one first."""

    workdir: Path
    console: Console

    def deml(self, *args: str, quiet: bool = False) -> str:
        """Run ``deml ARGS`` (the same Typer app as the ``deml`` script, in this process);
        its stdout. ``quiet``: the demo's own bookkeeping (e.g. ``--json`` to read a job id),
        neither printed nor shown. A failing command stops the demo."""
        if not quiet:
            self.console.print(f"[bold]$ deml {shlex.join(args)}[/bold]", highlight=False)
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            code = app(args=list(args), prog_name="deml", standalone_mode=False)
        if not quiet:
            sys.stdout.write(captured.getvalue())
            sys.stdout.flush()
        if code != 0:
            raise CommandFailed(f"`deml {shlex.join(args)}` exited {code}")
        return captured.getvalue()

    def json(self, *args: str) -> Any:
        return json.loads(self.deml(*args, "--json", quiet=True))

    def note(self, text: str) -> None:
        self.console.print(f"[dim]# {text}[/dim]", highlight=False)

    def heading(self, text: str) -> None:
        self.console.print(f"\n[bold cyan]== {text}[/bold cyan]")


@contextlib.contextmanager
def inside(workdir: Path) -> Iterator[None]:
    """The demo's directory as the working directory and ``$DEML_HOME`` under it (each
    account's local secrets: the sponsor's shards, the data owners' models and salts)."""
    before, home = Path.cwd(), os.environ.get("DEML_HOME")
    os.chdir(workdir)
    os.environ["DEML_HOME"] = str(workdir / "home")
    try:
        yield
    finally:
        os.chdir(before)
        if home is None:
            os.environ.pop("DEML_HOME", None)
        else:
            os.environ["DEML_HOME"] = home


def main() -> int:
    started = time.monotonic()
    console = Console(highlight=False)
    plot = PLOT.resolve()
    with tempfile.TemporaryDirectory(prefix="deml-demo-") as state:
        workdir = Path(state)
        console.print("Starting the devnet (anvil, Cartesi Rollups 2.2.0, host-mode node)...")
        config = DevnetConfig(state_dir=workdir / ".devnet", port=0, epoch_length=EPOCH_LENGTH)
        with Devnet(config) as devnet, inside(workdir):
            console.print(f"  in {workdir}: .devnet/devnet.json says where everything is")
            received, escrow = run(devnet, Terminal(workdir, console), plot=plot)
    console.print(f"\nDemo finished in {time.monotonic() - started:.1f} s.")
    return 0 if sum(received.values()) == escrow else 1


def run(devnet: Devnet, term: Terminal, *, plot: Path | None = None) -> tuple[dict[int, int], int]:
    """The story on a started devnet, in ``term``'s directory; what each account received on
    the base layer, and the escrow."""
    chain_client = Client(devnet)
    token = chain_client.info["reward_token"]
    accounts = chain_client.accounts

    term.heading("The data")
    term.note("python -m demo.data data   # held-out rows for the sponsor, a partition each")
    write_example_data(Path("data"))

    term.heading("The sponsor posts a job")
    job = _post_job(term)
    before = {n: balance_of(chain_client.chain, token, accounts[n]) for n in NAMES}
    term.deml("jobs")

    for round_index in (0, 1):
        _play_round(term, job, round_index)

    term.heading("Settlement on the base layer")
    term.note("end the epoch now (a devnet mines a block every few seconds anyway)")
    term.deml("devnet", "mine", str(EPOCH_LENGTH))
    for number in NAMES:  # each waits for the node's claim of the epoch, then executes
        term.deml("--account", str(number), "execute", "--wait")
    received = {n: balance_of(chain_client.chain, token, accounts[n]) - before[n] for n in NAMES}
    term.deml("verify", job)
    term.deml("job", "status", job)
    if plot is not None:
        term.deml("job", "report", job, "--plot", str(plot))
    escrow = ESCROW_TOKENS * TOKEN
    addresses = {n: str(accounts[n]).lower() for n in NAMES}
    _final_table(term, addresses, received, escrow, _best_scores(term, job))
    return received, escrow


def _post_job(term: Terminal) -> str:
    term.deml(
        *("--account", str(SPONSOR), "job", "create"),
        *("--model", "logistic:30", "--data", "data/holdout.npz", "--holdout-rows", "80"),
        *("--token", "devnet", "--amount", str(ESCROW_TOKENS), "--metric", "log_loss"),
        *("--commit-seconds", str(WINDOW), "--holdout-seconds", str(WINDOW)),
        *("--reveal-seconds", str(WINDOW), "--recipe", RECIPE),
    )
    job = str(max(int(summary["id"]) for summary in term.json("jobs")))
    term.note(f"job {job}: 2 rounds, logistic regression; approve + deposit + post in one command")
    return job


def _play_round(term: Terminal, job: str, round_index: int) -> None:
    term.heading(f"Round {round_index}")
    for name, number in OWNERS.items():
        model = f"{name}-{round_index}.onnx"
        term.deml(
            "--account", str(number), "train", job, "--data", f"data/{name}.npz", "--out", model
        )
        term.deml("--account", str(number), "submit", job, "--model", model)
    copy = f"copycat-{round_index}.onnx"
    term.deml("--account", str(COPYCAT), "job", "model", job, "--out", copy)
    term.deml("--account", str(COPYCAT), "submit", job, "--model", copy)
    term.note("only sealed commitments are on chain; now the commit window ends")
    term.deml("devnet", "advance-time", str(WINDOW))
    term.deml("--account", str(SPONSOR), "job", "reveal", job)
    for number in [*OWNERS.values(), COPYCAT]:
        term.deml("--account", str(number), "submit", job)  # uploads the model, reveals it
    term.deml("devnet", "advance-time", str(2 * WINDOW))
    term.deml("--account", str(OWNERS["alice"]), "job", "close", job)  # anyone may


def _best_scores(term: Terminal, job: str) -> tuple[dict[str, int], str]:
    """Each client's best score, and the reward token's symbol."""
    status = term.json("job", "status", job)
    best = {str(e["client"]).lower(): int(e["best_score"]) for e in status["leaderboard"]}
    return best, str(status["asset"]["symbol"])


def _final_table(
    term: Terminal,
    addresses: dict[int, str],
    received: dict[int, int],
    escrow: int,
    scores: tuple[dict[str, int], str],
) -> None:
    best, symbol = scores
    shown = Table(title="Balances and scores", title_justify="left")
    for column in ("account", "who", "best score (log-loss)", "received on chain"):
        shown.add_column(column, justify="right" if column != "who" else "left")
    for number, name in NAMES.items():
        score = best.get(addresses[number])
        shown.add_row(
            f"--account {number}",
            name,
            "" if score is None else str(score),
            f"{received[number] / TOKEN:.4f} {symbol}",
        )
    term.console.print()
    term.console.print(shown)
    total = sum(received.values())
    status = "OK" if total == escrow else "MISMATCH"
    term.console.print(
        f"paid out + refunded = {total / TOKEN:.4f} {symbol} of {escrow // TOKEN} escrowed: "
        f"{status}"
    )


if __name__ == "__main__":
    sys.exit(main())
