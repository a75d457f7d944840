"""What anyone can do with the outputs: ``deml outputs``, ``deml execute``, ``deml verify``."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

import typer
from rich.console import Console
from rich.markup import escape

from ..calls import format_units
from ..cli import app, current, reporting_errors
from ..node_outputs import NodeOutput, OutputReader, jsonable
from ..output import table
from ..sdk.node import NotClaimed
from ..verify import verify_job


class NotAVoucher(ValueError):
    code: ClassVar[str] = "not_a_voucher"


class VerifyFailed(RuntimeError):
    code: ClassVar[str] = "verify_failed"


def _describe(output: NodeOutput) -> str:
    if output.notice is not None:
        fields = ", ".join(f"{k}={v}" for k, v in jsonable(output.notice.fields).items())
        return f"{output.notice.name}: {fields}"
    if output.voucher is not None:
        transfer = output.voucher.erc20_transfer()
        if transfer is not None:
            return f"pays {transfer[1]} of token {output.voucher.destination} to {transfer[0]}"
        ether = format_units(output.voucher.value)
        return f"pays {ether} ETH ({output.voucher.value} wei) to {output.voucher.destination}"
    return f"{output.kind} (not decoded)"


def _output_data(reader: OutputReader, output: NodeOutput) -> dict[str, Any]:
    data: dict[str, Any] = {
        "index": output.index,
        "input_index": output.input_index,
        "epoch_index": output.epoch_index,
        "type": output.kind,
        "claimed": reader.is_claimed(output),
        "what": _describe(output),
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


@app.command("outputs")
def outputs(
    input_index: Annotated[
        int | None, typer.Option("--input", min=0, help="Only this input's outputs.")
    ] = None,
    mine: Annotated[
        bool,
        typer.Option("--mine", help="Only vouchers paying me and outputs of inputs I sent."),
    ] = False,
) -> None:
    """Notices and vouchers, decoded, with whether each is claimed (provable on chain) and,
    for vouchers, executed."""
    with reporting_errors():
        session = current().session()
        reader = OutputReader(session.transport())
        listed = list(reader.outputs(input_index=input_index))
        if mine:
            me = session.require_address()
            sent = reader.inputs_sent_by(me)
            listed = [o for o in listed if o.pays(me) or o.input_index in sent]
        rows = [_output_data(reader, o) for o in listed]

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
                    escape(r["what"]),
                )
                for r in rows
            ]
            console.print(table(None, ("#", "input", "type", "claimed", "executed", "what"), cells))

        current().output.result(rows, render)


def _execute_one(reader: OutputReader, output: NodeOutput, sender: str) -> str:
    if output.voucher is None:
        raise NotAVoucher(f"output {output.index} is a {output.kind}; only vouchers execute")
    if reader.is_executed(output):
        return "already executed"
    if not reader.is_claimed(output):
        return f"not claimed yet (epoch {output.epoch_index})"
    executed = reader.transport.execute_voucher(output.index, sender)
    return "executed" if executed else "already executed"


@app.command("execute")
def execute(
    indexes: Annotated[
        list[int] | None,
        typer.Argument(metavar="INDEX", help="Output indexes of vouchers (anyone's)."),
    ] = None,
    every: Annotated[
        bool,
        typer.Option("--all", help="Every voucher paying me (the default without INDEX)."),
    ] = False,
) -> None:
    """Execute vouchers on the base layer (pays their ether or tokens). Idempotent: an
    executed voucher says "already executed"; one whose epoch is not claimed yet says so
    (exit 1 when it was named by INDEX)."""
    with reporting_errors():
        session = current().session()
        me = session.require_address()
        reader = OutputReader(session.transport())
        if indexes and not every:
            chosen = [reader.output(index) for index in indexes]
        else:
            chosen = [o for o in reader.outputs() if o.voucher is not None and o.pays(me)]
        rows: list[dict[str, Any]] = [
            {"index": o.index, "what": _describe(o), "result": _execute_one(reader, o, me)}
            for o in chosen
        ]

        def render(console: Console) -> None:
            if not rows:
                console.print("no vouchers pay you")
                return
            cells = [(r["index"], escape(r["what"]), r["result"]) for r in rows]
            console.print(table(None, ("#", "voucher", "result"), cells))

        current().output.result(rows, render)
        waiting = [r["index"] for r in rows if r["result"].startswith("not claimed")]
        if indexes and waiting:
            raise NotClaimed(
                f"voucher(s) {waiting}: their epoch is not claimed yet; try again once the "
                "node has claimed it (on the devnet: within an epoch of blocks)"
            )


@app.command("verify")
def verify(job_id: Annotated[int, typer.Argument(metavar="JOB", help="The job's id.")]) -> None:
    """Recompute each closed round's FedAvg from the revealed models (fetched by CID) and
    compare with the RoundClosed notice's new model CID; check each notice on chain with
    the Application's validateOutput. Exits 1 on any mismatch or invalid notice."""
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
