"""Data owners: ``deml jobs``, ``deml train``, ``deml job model``, ``deml submit``,
``deml participate``, ``deml rewards`` (``deml job show`` is in ``sponsor.py``, with the
other ``job`` commands)."""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path
from typing import Annotated, Any

import typer

from deml_protocol.cid import compute_cid
from deml_protocol.errors import RoundAlreadyClosed

from .. import job_views
from ..assets import asset_of
from ..cli import DATA_OWNERS, app, current, reporting_errors
from ..datasets import load_table
from ..external_trainers import run_trainer_cmd
from ..job_history import closed_rounds
from ..output import Output, table
from ..phases import Phase, clock_of, mined_clock_of, phase_of, wait_until
from ..sdk import Client
from ..sklearn_training import TrainRecipe, train_model
from ..submitting import Step, current_round, submit_step
from ..workspace import Submission
from .sponsor import JobId, RoundOpt, job_app

TrainerCmd = Annotated[
    str | None,
    typer.Option(
        help="Train with this command instead of scikit-learn (runs code you trust; no network "
        "where the OS allows; file contract in docs/console.md).",
        rich_help_panel="Unsafe",
    ),
]
DataOpt = Annotated[Path, typer.Option(help="Your data: CSV (last column = label) or .npz (X, y).")]


@app.command("jobs", rich_help_panel=DATA_OWNERS)
def jobs() -> None:
    """List the jobs: status, metric, round, escrow, the open window."""
    with reporting_errors():
        session = current().session()
        client, transport = session.client(), session.transport()
        now = clock_of(transport)()
        rows = []
        for summary in client.jobs():
            asset = asset_of(transport, summary["asset"])
            window = "finished"
            if summary["status"] == "open":
                rnd = current_round(client.job(summary["id"]))
                window = job_views.window_text(rnd, now)
            rows.append(dict(summary) | {"reward": asset.show(summary["escrow"]), "window": window})
        current().output.result(rows, lambda c: job_views.render_jobs(c, rows))


def _train(
    client: Client, job_id: int, data: Path, out: Output, trainer_cmd: str | None = None
) -> tuple[bytes, int]:
    """The current global model (by CID, verified) trained on ``data``; and its round."""
    job = client.job(job_id)
    rnd = current_round(job)
    base = client.fetch_blob(rnd["model_cid"])
    X, y = load_table(data)
    if trainer_cmd is not None:
        return run_trainer_cmd(trainer_cmd, base, (X, y), job["recipe"], out=out), rnd["round"]
    recipe = TrainRecipe.parse(job["recipe"])
    with out.progress() as progress:
        task = progress.add_task(f"training on {len(y)} rows", total=recipe.epochs)
        model = train_model(
            base, X, y, recipe, lambda done, _: progress.update(task, completed=done)
        )
    return model, rnd["round"]


@app.command("train", rich_help_panel=DATA_OWNERS)
def train(
    job_id: JobId,
    data: DataOpt,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the model (.onnx).")],
    trainer_cmd: TrainerCmd = None,
) -> None:
    """Train the job's current model on your data.

    Fetches the round's global model by its CID (checked), trains it with scikit-learn
    warm-started from its weights, and writes the same graph with the new weights to `--out`.
    """
    with reporting_errors():
        out = current().output
        client = current().session().client()
        model, round_index = _train(client, job_id, data, out, trainer_cmd)
        out_file.write_bytes(model)
        result = {
            "job": job_id,
            "round": round_index,
            "model": str(out_file),
            "cid": compute_cid(model),
        }
        out.result(
            result,
            lambda c: c.print(f"trained for round {round_index}: {out_file} ({result['cid']})"),
        )


@job_app.command("model")
def model(
    job_id: JobId,
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the model (.onnx).")],
    round_index: RoundOpt = None,
) -> None:
    """Download a round's global model, checked against its CID.

    The current round's by default, or `--round R`'s.
    """
    with reporting_errors():
        client = current().session().client()
        job = client.job(job_id)
        rnd = current_round(job) if round_index is None else client.round(job_id, round_index)
        data = client.fetch_blob(rnd["model_cid"])  # raises if the bytes do not match the CID
        out_file.write_bytes(data)
        result = {
            "job": job_id,
            "round": rnd["round"],
            "model": str(out_file),
            "cid": rnd["model_cid"],
        }
        current().output.result(
            result,
            lambda c: c.print(f"round {rnd['round']}'s model: {out_file} ({result['cid']})"),
        )


def _step(*, waiting: bool, upload_early: bool = False) -> Step:
    session = current().session()
    transport = session.transport()
    return Step(
        session.client(signing=True),
        transport.app,
        clock_of(transport),
        mined_clock_of(transport),
        current().output,
        is_waiting=waiting,
        is_upload_early=upload_early,
    )


def _show(record: Submission) -> dict[str, Any]:
    state = "revealed" if record.is_revealed else "uploaded" if record.is_uploaded else "committed"
    return {
        "job": record.job,
        "round": record.round,
        "model_cid": record.model_cid,
        "commitment": "0x" + record.commitment,
        "state": state,
    }


@app.command("submit", rich_help_panel=DATA_OWNERS)
def submit(
    job_id: JobId,
    model: Annotated[
        Path | None, typer.Option(help="The trained model (.onnx); needed to commit.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Stay until the model is revealed.")] = False,
    upload_early: Annotated[
        bool,
        typer.Option(
            "--upload-early",
            help="Upload during the commit window (unsafe: a watcher can copy it).",
            rich_help_panel="Unsafe",
        ),
    ] = False,
) -> None:
    """Commit a model to the current round, then upload and reveal it.

    Commits now; uploads the model only once the commit window has closed (earlier, a watcher
    could commit the same model) and reveals it once the sponsor's shard is out. Without
    `--wait` it does what the windows allow now: run it again (no `--model`) to carry on.
    """
    with reporting_errors():
        step = _step(waiting=wait, upload_early=upload_early)
        record = submit_step(step, job_id, None if model is None else model.read_bytes())
        shown = _show(record)
        hint = (
            ""
            if record.is_revealed
            else "; run `deml submit` again after the window opens, or add --wait"
        )
        step.out.result(
            shown,
            lambda c: c.print(
                f"round {record.round} of job {job_id}: {shown['state']} {record.model_cid}{hint}"
            ),
        )


@app.command("participate", rich_help_panel=DATA_OWNERS)
def participate(job_id: JobId, data: DataOpt, trainer_cmd: TrainerCmd = None) -> None:
    """Train and submit every round until the job ends.

    Stays attached. Each round: trains on `--data`, commits, uploads after the commit window,
    reveals, and closes the round if nobody has.
    """
    with reporting_errors():
        step = _step(waiting=True)
        client = step.client
        done: dict[int, dict[str, Any]] = {}  # by round
        while (job := client.job(job_id))["status"] != "finished":
            rnd = current_round(job)
            phase = phase_of(rnd, step.clock())
            mine = any(s["client"].lower() == client.account.lower() for s in rnd["submissions"])
            if phase is Phase.COMMIT and not mine:
                model, _ = _train(client, job_id, data, step.out, trainer_cmd)
                record = submit_step(step, job_id, model)
                done[record.round] = _show(record)
            elif mine and phase is not Phase.CLOSABLE:
                record = submit_step(step, job_id, None)
                done[record.round] = _show(record)
            if phase is Phase.CLOSABLE:
                with suppress(RoundAlreadyClosed):  # someone else closed it first
                    client.close_round(job_id, rnd["round"])
                continue
            _wait_for_close(step, job_id, rnd)
        step.out.result(
            list(done.values()),
            lambda c: c.print(f"job {job_id} finished; {len(done)} rounds submitted"),
        )


def _wait_for_close(step: Step, job_id: int, rnd: Any) -> None:
    def moved_on() -> bool:
        job = step.client.job(job_id)
        return bool(job["status"] == "finished" or job["current_round"] != rnd["round"])

    wait_until(
        rnd["reveal_end_ts"],
        clock=step.clock,
        out=step.out,
        label=f"round {rnd['round']}: its close",
        ready=moved_on,
    )


@app.command("rewards", rich_help_panel=DATA_OWNERS)
def rewards(
    address: Annotated[
        str | None,
        typer.Option(help="Whose rewards (anyone may look); default: your account's."),
    ] = None,
) -> None:
    """Your balances in the application and what each job paid you.

    Take a balance out with `deml withdraw`.
    """
    with reporting_errors():
        session = current().session()
        client = session.client(signing=address is None)
        transport = session.transport()
        me = (address or client.account).lower()
        balances = client.balances(me)
        by_job: dict[int, int] = {}
        for fields in closed_rounds(transport):
            for who, amount in zip(fields["paid"], fields["amounts"], strict=True):
                if str(who).lower() == me:
                    by_job[int(fields["jobId"])] = by_job.get(int(fields["jobId"]), 0) + int(amount)
        assets = {job_id: asset_of(transport, client.job(job_id)["asset"]) for job_id in by_job}
        data = {"balances": balances, "payouts": {str(j): str(a) for j, a in by_job.items()}}

        def render(console: Any) -> None:
            held = [("ETH", asset_of(transport, "0x" + "0" * 40).show(balances["ether"]))]
            held += [(t, asset_of(transport, t).show(a)) for t, a in balances["erc20"].items()]
            console.print(table(f"Balances of {me} in the application", ("asset", "amount"), held))
            paid = [(j, assets[j].show(a)) for j, a in sorted(by_job.items())]
            console.print(table("Payouts", ("job", "paid"), paid) if paid else "no payouts yet")

        current().output.result(data, render)
