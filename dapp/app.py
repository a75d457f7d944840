"""Where an input goes.

``DApp.advance`` takes one advance request (metadata + payload) and returns what to emit:

1. payload larger than an input can be              -> reject ``payload_too_large``
2. ``msg_sender`` is the EtherPortal / ERC20Portal  -> credit the deposit; its
   ``execLayerData``, if any, runs as a call made by the depositor (step 3)
3. anything else                                    -> ``Router.dispatch``: selector -> handler

All of it runs on a copy of the state (``State.copy``); the copy replaces the state only when
the input is accepted. A rejected input leaves the state untouched and emits one report
``{"error": code, "detail": ...}`` and no outputs.

``DApp.inspect`` answers a declared query (``balances/0x…``, routed by ``dapp.inspector``)
with JSON reports.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from deml_protocol import inputs
from deml_protocol.errors import InternalError, PayloadTooLarge, Rejected
from deml_protocol.limits import MAX_INPUT_PAYLOAD

from . import blobs, inspector, jobs, ledger, rounds, scoring, settlement
from .config import Config
from .context import Context, Metadata, Output
from .router import Router
from .state import State

log = logging.getLogger("dapp")

#: Inspect replies are split into reports of at most this many bytes (tx buffer is 2 MiB).
MAX_REPORT_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class AdvanceResult:
    accepted: bool
    outputs: list[Output]
    reports: list[bytes]


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
        ctx = Context(
            state=self.state.copy(),
            meta=meta,
            config=self.config,
            sender=meta.msg_sender,
            scorers=self.scorers,
        )
        try:
            self._route(ctx, payload)
        except Rejected as exc:
            return self._rejected(meta, exc)
        except Exception:  # a bug, not bad input: reject, keep serving, log the traceback
            log.exception("input %d: internal error", meta.input_index)
            return self._rejected(meta, InternalError("unexpected error; see the node log"))
        self.state = ctx.state
        return AdvanceResult(True, ctx.outputs, ctx.reports)

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
        """Answer a query; (ok, JSON reports). Never changes the state."""
        try:
            body = inspector.answer(self.state, payload)
        except Rejected as exc:
            return False, [_json(exc.as_report())]
        except Exception:
            log.exception("inspect: internal error")
            error = InternalError("unexpected error; see the node log").as_report()
            return False, [_json(error)]
        text = _json(body)
        return True, [text[i : i + MAX_REPORT_BYTES] for i in range(0, len(text), MAX_REPORT_BYTES)]


def _json(body: Any) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
