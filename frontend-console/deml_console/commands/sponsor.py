"""``deml job ...``: a sponsor posts a job, reveals each round's held-out shard, closes rounds,
follows the job (``status``, ``run``) and draws it (``report``); ``job show`` is for anyone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deml_protocol.addresses import ZERO_ADDRESS
from deml_protocol.errors import RoundAlreadyClosed

from .. import job_views
from ..assets import Asset, BalanceTooLow, asset_of, token_address
from ..cli import SPONSORS, app, current, reporting_errors
from ..datasets import load_table
from ..job_history import payouts_by_client, round_results
from ..job_spec import (
    BadJobOption,
    BadModelSpec,
    build_model,
    holdout_shards,
    job_fields,
    model_features,
    spec_options,
)
from ..output import jsonable
from ..phases import (
    Phase,
    WindowNotOpen,
    clock_of,
    describe_seconds,
    mined_clock_of,
    phase_of,
    phase_window,
    wait_until,
)
from ..sdk import Client, notice
from ..sdk.node import NodeTransport
from ..session import Session
from ..submitting import current_round, upload
from ..workspace import HoldoutShard, SponsorSecrets

job_app = typer.Typer(help="Post a job, reveal its shards, close and follow its rounds.")
app.add_typer(job_app, name="job", rich_help_panel=SPONSORS)

JobId = Annotated[int, typer.Argument(metavar="JOB", help="The job's id (`deml jobs`).")]
RoundOpt = Annotated[
    int | None, typer.Option("--round", help="The round (default: the job's current round).")
]


def _connect(*, signing: bool) -> tuple[Session, Client, NodeTransport]:
    session = current().session()
    client = session.client(signing=signing)
    return session, client, session.transport()


@job_app.command("create")
@spec_options
def create(
    *,
    model: Annotated[
        str,
        typer.Option(
            help="An .onnx file, or logistic:D | linear:D | "
            "softmax:D:K | mlp:D,H,..,K (the model zoo)."
        ),
    ],
    data: Annotated[
        Path, typer.Option(help="Held-out data: CSV (last column = label) or .npz (X, y).")
    ],
    holdout_rows: Annotated[int, typer.Option(min=1, help="Rows per round's shard.")],
    rounds: Annotated[
        int | None, typer.Option(min=1, help="Rounds (default: all shards that fit).")
    ] = None,
    recipe: Annotated[str, typer.Option(help="Training recipe for clients (JSON).")] = "{}",
    ether: Annotated[
        str | None, typer.Option(help="Reward in ether, e.g. 1.5.", rich_help_panel="Reward")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(help="Reward in this ERC-20 (or `devnet`).", rich_help_panel="Reward"),
    ] = None,
    amount: Annotated[
        str | None,
        typer.Option(help="With --token: reward in whole tokens.", rich_help_panel="Reward"),
    ] = None,
    **spec: Any,
) -> None:
    """Post a job and escrow its reward.

    Uploads the initial model, commits each round's held-out shard (kept locally with its
    salt until `deml job reveal`), and deposits the reward with the job attached.
    """
    with reporting_errors():
        out = current().output
        session, client, transport = _connect(signing=True)
        initial, shards = _model_and_shards(model, data, rows=holdout_rows, rounds=rounds)
        fields = job_fields(initial, shards, recipe=recipe, holdout_rows=holdout_rows, options=spec)
        asset, reward = _reward(session, client, ether=ether, token=token, amount=amount)
        upload(client, initial, out, "the initial model")
        # Staged before posting and kept if posting fails: the job may exist all the same
        # (`deml job reveal` finds them by its commitments).
        staged = SponsorSecrets.stage(transport.app, shards)
        job_id = client.create_job(fields, reward, token=None if asset.is_ether else asset.address)
        kept = staged.adopt(transport.app, job_id)
        result = {
            "job": job_id,
            "model_cid": fields["modelCid"],
            "rounds": len(shards),
            "reward": str(reward),
            "asset": asset.address,
            "shards": str(kept.root / "sponsor"),
        }
        out.result(
            result,
            lambda c: c.print(
                f"job {job_id} posted: {len(shards)} rounds, reward {asset.show(reward)}\n"
                f"model {fields['modelCid']}\nheld-out shards and salts kept in {result['shards']}"
            ),
        )


def _model_and_shards(
    model: str, data: Path, *, rows: int, rounds: int | None
) -> tuple[bytes, list[HoldoutShard]]:
    initial = build_model(model)
    X, y = load_table(data)
    if X.shape[1] != model_features(initial):
        raise BadModelSpec(
            f"the model takes {model_features(initial)} features; {data} has {X.shape[1]}"
        )
    return initial, holdout_shards(X, y, rows=rows, rounds=rounds)


def _reward(
    session: Session, client: Client, *, ether: str | None, token: str | None, amount: str | None
) -> tuple[Asset, int]:
    """The reward's asset and amount (base units), once the account is known to hold it."""
    if (ether is None) == (token is None) or (token is not None and amount is None):
        raise BadJobOption("give the reward as --ether AMOUNT, or --token ADDR|devnet --amount N")
    transport = session.transport()
    address = ZERO_ADDRESS
    if token is not None:
        address = token_address(token, devnet_token=session.settings.reward_token)
    asset = asset_of(transport, address, is_strict=True)
    reward = asset.parse(ether if ether is not None else str(amount))
    held = asset.balance(transport, client.account)
    if held < reward:
        raise BalanceTooLow(
            f"{client.account} holds {asset.show(held)}; the reward is {asset.show(reward)}"
        )
    return asset, reward


@job_app.command("reveal")
def reveal(job_id: JobId, round_index: RoundOpt = None) -> None:
    """Reveal a round's held-out shard, inside its holdout window."""
    with reporting_errors():
        _, client, transport = _connect(signing=True)
        job = client.job(job_id)
        rnd = current_round(job, round_index)
        cid = _reveal_round(client, transport, job, rnd)
        current().output.result(
            {"job": job_id, "round": rnd["round"], "holdout_cid": cid},
            lambda c: c.print(f"round {rnd['round']}: shard {cid} revealed"),
        )


def _reveal_round(client: Client, transport: NodeTransport, job: Any, rnd: Any) -> str:
    now = clock_of(transport)()
    phase = phase_of(rnd, now)
    if phase is not Phase.HOLDOUT:
        opens, closes = phase_window(rnd, Phase.HOLDOUT)
        when = (
            f"opens in {describe_seconds(opens - now)}"
            if now < opens
            else f"closed {describe_seconds(now - (closes or now))} ago"
        )
        raise WindowNotOpen(
            f"round {rnd['round']}: the holdout window {when} (now: {phase} window)"
        )
    if rnd["holdout_cid"] is not None:
        return str(rnd["holdout_cid"])
    # The shard would let a late commitment fit it: wait for a block past the commit window.
    wait_until(
        rnd["commit_end_ts"],
        clock=mined_clock_of(transport),
        out=current().output,
        label=f"round {rnd['round']}: a block past the commit window",
    )
    commitments = job["holdout_commitments"]
    shard = SponsorSecrets.of_job(transport.app, job["id"], commitments).check(
        rnd["round"], commitments
    )
    upload(client, shard.data, current().output, f"round {rnd['round']}'s held-out shard")
    client.reveal_holdout(job["id"], rnd["round"], shard.cid, shard.salt)
    return shard.cid


@job_app.command("close")
def close(job_id: JobId, round_index: RoundOpt = None) -> None:
    """Close a round after its reveal window: score, aggregate, pay.

    Anyone may close a round.
    """
    with reporting_errors():
        _, client, transport = _connect(signing=True)
        job = client.job(job_id)
        fields = _close_round(client, transport, current_round(job, round_index))
        asset = asset_of(transport, job["asset"]).view()
        current().output.result(
            jsonable(fields), lambda c: job_views.render_closed(c, fields, asset)
        )


def _close_round(client: Client, transport: NodeTransport, rnd: Any) -> dict[str, Any]:
    now = clock_of(transport)()
    if phase_of(rnd, now) is not Phase.CLOSABLE:
        if rnd["closed"]:
            raise WindowNotOpen(f"round {rnd['round']} is closed already")
        raise WindowNotOpen(
            f"round {rnd['round']} can be closed in {describe_seconds(rnd['reveal_end_ts'] - now)}"
        )
    return notice(client.close_round(rnd["job"], rnd["round"]), "RoundClosed").fields


@job_app.command("status")
def status(job_id: JobId) -> None:
    """Follow a job: rounds, windows, scores, leaderboard, payouts."""
    with reporting_errors():
        _, client, transport = _connect(signing=False)
        data = _status_data(client, transport, job_id)
        current().output.result(data, lambda c: job_views.render_status(c, data))


def _status_data(client: Client, transport: NodeTransport, job_id: int) -> dict[str, Any]:
    job = client.job(job_id)
    now = clock_of(transport)()
    asset = asset_of(transport, job["asset"])
    paid = payouts_by_client(round_results(transport, job_id))
    return {
        "job": job,
        "now": now,
        "asset": asset.view(),
        "leaderboard": client.leaderboard(job_id),
        "payouts": {who: str(amount) for who, amount in sorted(paid.items())},
    }


@job_app.command("show")
def show(job_id: JobId) -> None:
    """Show a job: model, recipe, metric, reward, the open window."""
    with reporting_errors():
        _, client, transport = _connect(signing=False)
        job = client.job(job_id)
        asset = asset_of(transport, job["asset"])
        data = {"job": job, "now": clock_of(transport)(), "asset": asset.view()}
        current().output.result(job, lambda c: job_views.render_show(c, data))


@job_app.command("run")
def run(job_id: JobId) -> None:
    """Reveal and close every round in time, until the job ends.

    Stays attached: reveals each round's shard when its holdout window opens, closes each
    round when its reveal window ends (a countdown on stderr meanwhile).
    """
    with reporting_errors():
        out = current().output
        _, client, transport = _connect(signing=True)
        clock = clock_of(transport)
        while (job := client.job(job_id))["status"] != "finished":
            rnd = current_round(job, None)
            phase = phase_of(rnd, clock())
            if phase is Phase.HOLDOUT and rnd["holdout_cid"] is None:
                cid = _reveal_round(client, transport, job, rnd)
                out.say(f"round {rnd['round']}: shard {cid} revealed")
            elif phase is Phase.CLOSABLE:
                try:
                    fields = _close_round(client, transport, rnd)
                except RoundAlreadyClosed:  # a data owner closed it first
                    continue
                out.say(
                    f"round {rnd['round']} closed: baseline {fields['baseline']}, "
                    f"{sum(fields['accepted'])} accepted"
                )
            else:
                target = rnd["commit_end_ts"] if phase is Phase.COMMIT else rnd["reveal_end_ts"]
                label = "the holdout window" if phase is Phase.COMMIT else "the round's close"
                wait_until(target, clock=clock, out=out, label=f"round {rnd['round']}: {label}")
        data = _status_data(client, transport, job_id)
        out.result(data, lambda c: job_views.render_status(c, data))


@job_app.command("report")
def report(
    job_id: JobId,
    plot: Annotated[Path, typer.Option(help="Write the plot here (PNG).")],
) -> None:
    """Plot a job's scores per round and payouts per client (PNG)."""
    with reporting_errors():
        _, client, transport = _connect(signing=False)
        data = _status_data(client, transport, job_id)
        from ..plots import plot_job  # matplotlib: imported only here

        plot_job(data, plot)
        current().output.result({"plot": str(plot)}, lambda c: c.print(f"plot written to {plot}"))
