"""Where an input goes.

``DApp.advance`` takes one advance request (metadata + payload) and returns what to emit:

1. payload larger than an input can be              -> reject ``payload_too_large``
2. ``msg_sender`` is the EtherPortal / ERC20Portal  -> credit the deposit; its
   ``execLayerData``, if any, runs as a call made by the depositor (step 3)
3. anything else                                    -> ``Router.dispatch``: selector -> handler

All of it runs in a transaction on ``DApp.state`` (``dapp.state``: an undo journal, so an
input costs what it writes, not what the state holds). A rejected input is rolled back before
``advance`` returns: the state is untouched, and it emits one report
``{"error": code, "detail": ...}`` and no outputs. An accepted input leaves its transaction
open: ``dapp.service`` commits it (``DApp.commit``) only once every output was emitted, and
rolls it back (``DApp.discard``) if the guest API refused one.

Every output is bounded here, before anything is emitted: a rejection's ``detail`` is cut at
``deml_protocol.errors.MAX_DETAIL_CHARS``; a notice or voucher payload over
:data:`MAX_OUTPUT_BYTES` or a report over :data:`MAX_REPORT_BYTES` rejects the input
(``output_too_large``) instead of reaching the guest API, which would refuse it.

``DApp.inspect`` answers a declared query (``balances/0x…``, routed by ``dapp.inspector``)
with JSON reports of at most :data:`MAX_REPORT_BYTES` each, in a transaction that is always
rolled back.
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


def build_router() -> Router:
    router = Router()
    router.add(inputs.WITHDRAW_ETHER, ledger.handle_withdraw_ether)
    router.add(inputs.WITHDRAW_ERC20, ledger.handle_withdraw_erc20)
    router.add(inputs.BEGIN_BLOB, blobs.handle_begin_blob)
    router.add(inputs.PUT_CHUNK, blobs.handle_put_chunk)
    router.add(inputs.ABORT_BLOB, blobs.handle_abort_blob)
    router.add(inputs.COLLECT_BLOBS, blobs.handle_collect_blobs)
    router.add(inputs.DROP_UPLOAD, blobs.handle_drop_upload)
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
        """Run one input. Rejected: rolled back already. Accepted: its writes stay pending
        until ``commit`` (keep) or ``discard`` (drop)."""
        if self.state.in_transaction:
            raise RuntimeError("the previous input was neither committed nor discarded")
        ctx = Context(
            state=self.state,
            meta=meta,
            config=self.config,
            sender=meta.msg_sender,
            scorers=self.scorers,
        )
        try:
            self._route(ctx, payload)
            _check_output_sizes(ctx)
        except Rejected as exc:
            self.state.rollback()
            return self._rejected(meta, exc)
        except Exception:  # a bug, not bad input: reject, keep serving, log the traceback
            self.state.rollback()
            log.exception("input %d: internal error", meta.input_index)
            return self._rejected(meta, InternalError("unexpected error; see the node log"))
        return AdvanceResult(True, ctx.outputs, ctx.reports)

    def commit(self) -> None:
        """Keep the pending writes of the accepted input, once all its outputs were emitted."""
        self.state.commit()

    def discard(self) -> None:
        """Drop the pending writes of the accepted input (its outputs could not be emitted)."""
        self.state.rollback()

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
        savepoint = ctx.state.savepoint()
        call = Context(
            state=ctx.state,
            meta=ctx.meta,
            config=ctx.config,
            sender=deposit.depositor,
            deposit=deposit,
            scorers=ctx.scorers,
        )
        try:
            self.router.dispatch(call, portal.exec_layer_data)
        except Rejected as exc:
            ctx.state.rollback(savepoint)
            ctx.report_json(exc.as_report() | {"deposit": "credited to the depositor"})
            return
        except Exception:
            ctx.state.rollback(savepoint)
            log.exception("input %d: internal error in a deposit's call", ctx.meta.input_index)
            error = InternalError("unexpected error; see the node log").as_report()
            ctx.report_json(error | {"deposit": "credited to the depositor"})
            return
        ctx.outputs.extend(call.outputs)
        ctx.reports.extend(call.reports)

    def _rejected(self, meta: Metadata, exc: Rejected) -> AdvanceResult:
        log.info("input %d rejected: %s: %s", meta.input_index, exc.code, exc.detail)
        return AdvanceResult(False, [], [_json(exc.as_report())])

    def inspect(self, payload: bytes) -> tuple[bool, list[bytes]]:
        """Answer a query; (ok, JSON reports). Never changes the state: views only read, and
        whatever a view might write is rolled back. Any failure, a bug in a view included, is
        a rejected inspect with one report."""
        savepoint = self.state.savepoint()
        try:
            text = _json(inspector.answer(self.state, payload, self.config))
        except Rejected as exc:
            return False, [_json(exc.as_report())]
        except Exception:
            log.exception("inspect: internal error")
            error = InternalError("unexpected error; see the node log").as_report()
            return False, [_json(error)]
        finally:
            self.state.rollback(savepoint)
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
