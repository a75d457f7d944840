"""Where an input goes.

``DApp.advance`` takes one advance request (metadata + payload) and returns what to emit:

1. payload larger than an input can be              -> reject ``payload_too_large``
2. ``msg_sender`` is the EtherPortal / ERC20Portal  -> credit the deposit; its
   ``execLayerData``, if any, runs as a call made by the depositor (step 3)
3. anything else                                    -> ``Router.dispatch``: selector -> handler

All of it runs on a copy of the state (``State.copy``). ``advance`` never changes
``DApp.state``: an accepted result carries the new state, and ``dapp.service`` commits it
(``DApp.commit``) only once every output of the input was emitted. A rejected input leaves the
state untouched and emits one report ``{"error": code, "detail": ...}`` and no outputs.

Every output is bounded here, before anything is emitted: a rejection's ``detail`` is cut at
``deml_protocol.errors.MAX_DETAIL_CHARS``; a notice or voucher payload over
:data:`MAX_OUTPUT_BYTES` or a report over :data:`MAX_REPORT_BYTES` rejects the input
(``output_too_large``) instead of reaching the guest API, which would refuse it.

``DApp.inspect`` answers a declared query (``balances/0x…``, routed by ``dapp.inspector``)
with JSON reports of at most :data:`MAX_REPORT_BYTES` each, on a copy of the state.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Final

from deml_protocol import inputs
from deml_protocol.errors import InternalError, OutputTooLarge, PayloadTooLarge, Rejected
from deml_protocol.limits import MAX_INPUT_PAYLOAD

from . import blobs, inspector, jobs, ledger, rounds, scoring, settlement
from .config import Config
from .context import Context, Metadata, Notice, Output
from .router import Router
from .state import State

log = logging.getLogger("dapp")

#: The largest report the DApp emits; inspect replies are split into reports of this size.
#: The machine's tx buffer, which every output and report passes through, is 2 MiB
#: (``deml_protocol.limits.TX_BUFFER_BYTES``).
MAX_REPORT_BYTES: Final = 1 << 20
#: The largest notice or voucher payload the DApp emits (DeML's notices are far smaller:
#: docs/protocol.md §7.2).
MAX_OUTPUT_BYTES: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class AdvanceResult:
    accepted: bool
    outputs: list[Output]
    reports: list[bytes]
    #: The state after an accepted input, for ``DApp.commit``; None when rejected.
    state: State | None = None


def build_router() -> Router:
    router = Router()
    router.add(inputs.WITHDRAW_ETHER, ledger.handle_withdraw_ether)
    router.add(inputs.WITHDRAW_ERC20, ledger.handle_withdraw_erc20)
    router.add(inputs.BEGIN_BLOB, blobs.handle_begin_blob)
    router.add(inputs.PUT_CHUNK, blobs.handle_put_chunk)
    router.add(inputs.ABORT_BLOB, blobs.handle_abort_blob)
    router.add(inputs.CREATE_JOB, jobs.handle_create_job)
    router.add(inputs.CREATE_JOB_FROM_BALANCE, jobs.handle_create_job_from_balance)
    router.add(inputs.COMMIT_SUBMISSION, rounds.handle_commit_submission)
    router.add(inputs.REVEAL_HOLDOUT, rounds.handle_reveal_holdout)
    router.add(inputs.REVEAL_SUBMISSION, rounds.handle_reveal_submission)
    router.add(inputs.CLOSE_ROUND, settlement.handle_close_round)
    router.add(inputs.EVALUATE, scoring.handle_evaluate)
    return router


@dataclass(slots=True)
class DApp:
    config: Config = field(default_factory=Config)
    state: State = field(default_factory=State)
    router: Router = field(default_factory=build_router)
    #: Compiled ONNX Runtime scorers by job graph (dapp.scoring); a cache, not state.
    scorers: dict[str, Any] = field(default_factory=dict)

    def advance(self, meta: Metadata, payload: bytes) -> AdvanceResult:
        """Run one input on a copy of the state; ``self.state`` is not changed (``commit``)."""
        ctx = Context(
            state=self.state.copy(),
            meta=meta,
            config=self.config,
            sender=meta.msg_sender,
            scorers=self.scorers,
        )
        try:
            self._route(ctx, payload)
            _check_output_sizes(ctx)
        except Rejected as exc:
            return self._rejected(meta, exc)
        except Exception:  # a bug, not bad input: reject, keep serving, log the traceback
            log.exception("input %d: internal error", meta.input_index)
            return self._rejected(meta, InternalError("unexpected error; see the node log"))
        return AdvanceResult(True, ctx.outputs, ctx.reports, ctx.state)

    def commit(self, result: AdvanceResult) -> None:
        """Keep the state of an accepted input, once all its outputs were emitted."""
        if result.accepted and result.state is not None:
            self.state = result.state

    def _route(self, ctx: Context, payload: bytes) -> None:
        if len(payload) > MAX_INPUT_PAYLOAD:
            raise PayloadTooLarge(
                f"payload is {len(payload)} bytes; an input carries at most {MAX_INPUT_PAYLOAD}"
            )
        sender = ctx.meta.msg_sender
        if sender == self.config.ether_portal:
            self._deposit(ctx, ledger.decode_ether_deposit(payload))
        elif sender == self.config.erc20_portal:
            self._deposit(ctx, ledger.decode_erc20_deposit(payload))
        else:
            self.router.dispatch(ctx, payload)

    def _deposit(self, ctx: Context, portal: ledger.PortalDeposit) -> None:
        """Credit first; then run execLayerData as the depositor's call, all-or-nothing.

        If that call is rejected only the call rolls back: the deposit stays credited (the
        assets are already in the Application contract) and a report says why.
        """
        deposit = portal.deposit
        ledger.credit(ctx.state, deposit.asset, deposit.depositor, deposit.amount)
        if not portal.exec_layer_data:
            return
        call = Context(
            state=ctx.state.copy(),
            meta=ctx.meta,
            config=ctx.config,
            sender=deposit.depositor,
            deposit=deposit,
            scorers=ctx.scorers,
        )
        try:
            self.router.dispatch(call, portal.exec_layer_data)
        except Rejected as exc:
            ctx.report_json(exc.as_report() | {"deposit": "credited to the depositor"})
            return
        except Exception:
            log.exception("input %d: internal error in a deposit's call", ctx.meta.input_index)
            error = InternalError("unexpected error; see the node log").as_report()
            ctx.report_json(error | {"deposit": "credited to the depositor"})
            return
        ctx.state = call.state
        ctx.outputs.extend(call.outputs)
        ctx.reports.extend(call.reports)

    def _rejected(self, meta: Metadata, exc: Rejected) -> AdvanceResult:
        log.info("input %d rejected: %s: %s", meta.input_index, exc.code, exc.detail)
        return AdvanceResult(False, [], [_json(exc.as_report())])

    def inspect(self, payload: bytes) -> tuple[bool, list[bytes]]:
        """Answer a query; (ok, JSON reports). Never changes the state: the view reads a copy,
        and any failure, a bug in a view included, is a rejected inspect with one report."""
        try:
            text = _json(inspector.answer(self.state.copy(), payload))
        except Rejected as exc:
            return False, [_json(exc.as_report())]
        except Exception:
            log.exception("inspect: internal error")
            error = InternalError("unexpected error; see the node log").as_report()
            return False, [_json(error)]
        return True, [text[i : i + MAX_REPORT_BYTES] for i in range(0, len(text), MAX_REPORT_BYTES)]


def _check_output_sizes(ctx: Context) -> None:
    """Refuse, as a rejection of the input, an output the DApp must not emit."""
    for output in ctx.outputs:
        kind = "notice" if isinstance(output, Notice) else "voucher"
        if len(output.payload) > MAX_OUTPUT_BYTES:
            raise OutputTooLarge(
                f"this input would emit a {kind} of {len(output.payload)} bytes; "
                f"at most {MAX_OUTPUT_BYTES} are emitted"
            )
    for report in ctx.reports:
        if len(report) > MAX_REPORT_BYTES:
            raise OutputTooLarge(
                f"this input would emit a report of {len(report)} bytes; "
                f"at most {MAX_REPORT_BYTES} are emitted"
            )


def _json(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
