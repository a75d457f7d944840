"""The rollup loop: ask for a request, handle it, emit its outputs, report its status."""

from __future__ import annotations

import logging

from .app import DApp
from .context import Metadata, Notice
from .rollup import Rollup

log = logging.getLogger("dapp")


def serve(rollup: Rollup, dapp: DApp) -> None:
    """Run forever. Bad input never ends this loop; only a broken rollup server does."""
    status = "accept"
    while True:
        request = rollup.finish(status)
        kind = request["request_type"]
        data = request["data"]
        payload = bytes.fromhex(data["payload"][2:])
        if kind == "advance_state":
            status = _advance(rollup, dapp, Metadata.from_json(data["metadata"]), payload)
        elif kind == "inspect_state":
            ok, reports = dapp.inspect(payload)
            for report in reports:
                rollup.report(report)
            status = "accept" if ok else "reject"
        else:
            log.error("unknown request type %r", kind)
            status = "reject"


def _advance(rollup: Rollup, dapp: DApp, meta: Metadata, payload: bytes) -> str:
    result = dapp.advance(meta, payload)
    for output in result.outputs:
        if isinstance(output, Notice):
            rollup.notice(output.payload)
        else:
            rollup.voucher(output.destination, output.value, output.payload)
    for report in result.reports:
        rollup.report(report)
    return "accept" if result.accepted else "reject"
