"""What anyone can do with the outputs: ``deml outputs``, ``deml execute``, ``deml verify``;
and ``deml cid``."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar

import typer
from rich.console import Console

from deml_protocol.cid import cid_of_file

from ..assets import Asset, assets_of, describe_voucher
from ..cli import ANYONE, app, current, reporting_errors
from ..node_outputs import NodeOutput, OutputReader
from ..output import Output, jsonable, table
from ..phases import describe_seconds
from ..sdk.node import NotClaimed
from ..verify import verify_job


class NotAVoucher(ValueError):
    code: ClassVar[str] = "not_a_voucher"


#: How often ``deml execute --wait`` asks the node again (a devnet mines every 2 s).
_CLAIM_POLL_S = 1.0


class VerifyFailed(RuntimeError):
    code: ClassVar[str] = "verify_failed"


def _describe(output: NodeOutput, assets: Callable[[str], Asset]) -> str:
    if output.notice is not None:
        fields = ", ".join(f"{k}={v}" for k, v in jsonable(output.notice.fields).items())
        return f"{output.notice.name}: {fields}"
    if output.voucher is not None:
        return describe_voucher(output.voucher, assets)
    return f"{output.kind} (not decoded)"


def _output_data(
    reader: OutputReader, output: NodeOutput, assets: Callable[[str], Asset]
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "index": output.index,
        "input_index": output.input_index,
        "epoch_index": output.epoch_index,
        "type": output.kind,
        "claimed": reader.is_claimed(output),
        "what": _describe(output, assets),
    }
    if output.notice is not None:
        data["notice"] = {"name": output.notice.name, "fields": jsonable(output.notice.fields)}
    if output.voucher is not None:
        data["voucher"] = {
            "destination": output.voucher.destination,
            "value": str(output.voucher.value),
            "payload": "0x" + output.voucher.payload.hex(),
        }
        data["executed"] = reader.is_executed(output)
    return data


@app.command("outputs", rich_help_panel=ANYONE)
def outputs(
    input_index: Annotated[
        int | None, typer.Option("--input", min=0, help="Only this input's outputs.")
    ] = None,
    mine: Annotated[
        bool,
        typer.Option("--mine", help="Only vouchers paying me and outputs of inputs I sent."),
    ] = False,
) -> None:
    """List notices and vouchers, decoded.

    Says whether each is claimed (its epoch's claim is accepted: provable on chain) and,
    for a voucher, executed.
    """
    with reporting_errors():
        session = current().session()
        reader = OutputReader(session.transport())
        listed = list(reader.outputs(input_index=input_index))
        if mine:
            me = session.require_address()
            sent = reader.inputs_sent_by(me)
            listed = [o for o in listed if o.pays(me) or o.input_index in sent]
        assets = assets_of(reader.transport)
        rows = [_output_data(reader, o, assets) for o in listed]

        def render(console: Console) -> None:
            if not rows:
                console.print("no outputs")
                return
            cells = [
                (
                    r["index"],
                    r["input_index"],
                    r["type"],
                    "yes" if r["claimed"] else "no",
                    {True: "yes", False: "no"}.get(r.get("executed"), ""),  # type: ignore[arg-type]
                    r["what"],
                )
                for r in rows
            ]
            console.print(table(None, ("#", "input", "type", "claimed", "executed", "what"), cells))

        current().output.result(rows, render)


def _execute_one(reader: OutputReader, output: NodeOutput, sender: str) -> str:
    if reader.is_executed(output):
        return "already executed"
    if not reader.is_claimed(output):
        return f"not claimed yet (epoch {output.epoch_index})"
    executed = reader.transport.execute_voucher(output.index, sender)
    return "executed" if executed else "already executed"


def _wait_for_claims(
    reader: OutputReader, chosen: list[NodeOutput], *, out: Output, timeout_s: int
) -> list[NodeOutput]:
    """``chosen``, re-read until every voucher not yet executed is claimed, or ``timeout_s``
    seconds (wall clock: claims come with blocks) have passed."""
    pending = [o for o in chosen if not reader.is_claimed(o) and not reader.is_executed(o)]
    if not pending:
        return chosen
    latest = {o.index: o for o in chosen}
    epochs = sorted({o.epoch_index for o in pending})
    what = f"the claim of epoch(s) {', '.join(map(str, epochs))}"
    out.say(f"waiting up to {describe_seconds(timeout_s)} for {what}")
    deadline = time.monotonic() + timeout_s
    with out.status(what) as show:
        while pending and (left := deadline - time.monotonic()) > 0:
            show(f"waiting for {what}: {describe_seconds(int(left))} left (--timeout)")
            time.sleep(min(_CLAIM_POLL_S, left))
            fresh = [reader.output(o.index) for o in pending]
            latest |= {o.index: o for o in fresh}
            pending = [o for o in fresh if not reader.is_claimed(o)]
    return [latest[o.index] for o in chosen]


@app.command("execute", rich_help_panel=ANYONE)
def execute(
    indexes: Annotated[
        list[int] | None,
        typer.Argument(metavar="INDEX", help="Output indexes of vouchers (anyone's)."),
    ] = None,
    every: Annotated[
        bool,
        typer.Option("--all", help="Every voucher paying me (the default without INDEX)."),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Wait until the vouchers' epochs are claimed, then execute."),
    ] = False,
    timeout: Annotated[
        int, typer.Option(min=1, metavar="SECONDS", help="With --wait: give up after this long.")
    ] = 600,
) -> None:
    """Execute vouchers on the base layer: pay their ether or tokens.

    Without INDEX: every voucher that pays you. Idempotent: an executed voucher says
    "already executed". One whose epoch is not claimed yet says so (exit 1 if named by
    INDEX); with `--wait` the command waits for the claim first (exit 1 if `--timeout`
    passes).
    """
    with reporting_errors():
        session = current().session()
        me = session.require_address()
        reader = OutputReader(session.transport())
        if indexes and not every:
            chosen = [reader.output(index) for index in indexes]
        else:
            chosen = [o for o in reader.outputs() if o.voucher is not None and o.pays(me)]
        for output in chosen:
            if output.voucher is None:
                raise NotAVoucher(
                    f"output {output.index} is a {output.kind}; only vouchers execute"
                )
        assets = assets_of(reader.transport)
        if wait:
            chosen = _wait_for_claims(reader, chosen, out=current().output, timeout_s=timeout)
        rows: list[dict[str, Any]] = [
            {"index": o.index, "what": _describe(o, assets), "result": _execute_one(reader, o, me)}
            for o in chosen
        ]

        def render(console: Console) -> None:
            if not rows:
                console.print("no vouchers pay you")
                return
            cells = [(r["index"], r["what"], r["result"]) for r in rows]
            console.print(table(None, ("#", "voucher", "result"), cells))

        current().output.result(rows, render)
        waiting = [r["index"] for r in rows if r["result"].startswith("not claimed")]
        if waiting and wait:
            raise NotClaimed(
                f"voucher(s) {waiting}: their epoch is still not claimed after "
                f"{describe_seconds(timeout)}; run again later, or with a longer --timeout"
            )
        if waiting and indexes:
            raise NotClaimed(
                f"voucher(s) {waiting}: their epoch is not claimed yet; try again once the "
                "node has claimed it, or add --wait"
            )


@app.command("verify", rich_help_panel=ANYONE)
def verify(job_id: Annotated[int, typer.Argument(metavar="JOB", help="The job's id.")]) -> None:
    """Recompute a job's models and check its notices on chain.

    For each closed round: recomputes FedAvg from the revealed models (fetched by CID),
    compares it with the RoundClosed notice's new model, and checks the notice with the
    Application's `validateOutput`. Exits 1 on any mismatch or invalid notice.
    """
    with reporting_errors():
        session = current().session()
        checks = verify_job(session.client(), OutputReader(session.transport()), job_id)
        rows = [check.data() for check in checks]

        def render(console: Console) -> None:
            if not rows:
                console.print(f"job {job_id} has no closed round yet")
                return
            cells = [
                (r["round"], r["new_model_cid"], r["aggregate"], r["notice_index"], r["on_chain"])
                for r in rows
            ]
            console.print(
                table(None, ("round", "new model", "FedAvg", "notice", "on chain"), cells)
            )

        current().output.result(rows, render)
        failed = [c.round for c in checks if c.is_failure]
        if failed:
            raise VerifyFailed(f"job {job_id}: round(s) {failed} do not verify (see above)")


@app.command("cid", rich_help_panel=ANYONE)
def cid_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="File to hash.", show_default=False)],
    cid_version: Annotated[
        int,
        typer.Option(
            "--cid-version",
            min=0,
            max=1,
            help="1: as `ipfs add --cid-version=1` (bafy..., default); 0: as `ipfs add` (Qm...).",
        ),
    ] = 1,
) -> None:
    """Print a file's CID, as `ipfs add` gives it.

    Computed locally: nothing is uploaded anywhere.
    """
    with reporting_errors():
        cid = cid_of_file(file, version=cid_version)
        shown = {"file": str(file), "cid": cid}
        current().output.result(shown, lambda console: console.print(cid, highlight=False))
