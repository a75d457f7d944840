"""The rollup loop: ask for a request, handle it, emit its outputs, report its status.

No input and no query ends this loop: a DApp that exits is a halted machine, and a halted
machine locks every balance for good. If the guest API refuses an output or a report
(``RollupError``: the server answered, with an error), the request is rejected with one small
``output_refused`` report: an advance's outputs are discarded with the machine's rollback, and
its writes are discarded (``DApp.commit`` runs only after every output was emitted). Only
a broken connection to the rollup server (any other exception of ``Rollup``) ends the loop.

With a :class:`~dapp.snapshot.SnapshotWriter`, the state is written out after an advance is
finished and before the next ``/finish``: never in the middle of an input.
"""

from __future__ import annotations

import json
import logging

from deml_protocol.errors import OutputRefused

from .app import AdvanceResult, DApp
from .context import Metadata, Notice
from .rollup import Rollup, RollupError
from .snapshot import SnapshotWriter

log = logging.getLogger("dapp")


def serve(rollup: Rollup, dapp: DApp, snapshots: SnapshotWriter | None = None) -> None:
    """Run forever. Bad input never ends this loop; only a broken rollup server does."""
    status = "accept"
    while True:
        request = rollup.finish(status)
        kind = request["request_type"]
        data = request["data"]
        payload = bytes.fromhex(data["payload"][2:])
        if kind == "advance_state":
            meta = Metadata.from_json(data["metadata"])
            status = _advance(rollup, dapp, meta, payload)
            if snapshots is not None:
                _snapshot(snapshots, dapp, meta.input_index)
        elif kind == "inspect_state":
            status = _inspect(rollup, dapp, payload)
        else:
            log.error("unknown request type %r", kind)
            status = "reject"


def _advance(rollup: Rollup, dapp: DApp, meta: Metadata, payload: bytes) -> str:
    result = dapp.advance(meta, payload)
    try:
        _emit(rollup, result)
    except RollupError as exc:
        log.error("input %d: the rollup server refused an output: %s", meta.input_index, exc)
        _report_refusal(rollup, f"input {meta.input_index}", exc)
        dapp.discard()  # the machine rolls back too; a no-op after a rejection
        return "reject"
    if not result.accepted:
        return "reject"
    dapp.commit()
    return "accept"


def _snapshot(snapshots: SnapshotWriter, dapp: DApp, input_index: int) -> None:
    """A snapshot is an optimisation of the host's: failing to write one never stops the DApp
    (the host then has no snapshot for this input and replays more)."""
    try:
        snapshots.after_input(dapp.state, input_index)
    except OSError as exc:
        log.error("input %d: no snapshot written: %s", input_index, exc)


def _emit(rollup: Rollup, result: AdvanceResult) -> None:
    for output in result.outputs:
        if isinstance(output, Notice):
            rollup.notice(output.payload)
        else:
            rollup.voucher(output.destination, output.value, output.payload)
    for report in result.reports:
        rollup.report(report)


def _inspect(rollup: Rollup, dapp: DApp, payload: bytes) -> str:
    ok, reports = dapp.inspect(payload)
    try:
        for report in reports:
            rollup.report(report)
    except RollupError as exc:
        log.error("inspect: the rollup server refused a report: %s", exc)
        _report_refusal(rollup, "inspect", exc)
        return "reject"
    return "accept" if ok else "reject"


def _report_refusal(rollup: Rollup, what: str, exc: RollupError) -> None:
    """One small report naming the refusal; if even that is refused, the log has it."""
    error = OutputRefused(f"the rollup server refused an output of this request: {exc}")
    body = json.dumps(error.as_report(), sort_keys=True, separators=(",", ":")).encode()
    try:
        rollup.report(body)
    except RollupError as again:
        log.error("%s: the rollup server refused the output_refused report too: %s", what, again)
