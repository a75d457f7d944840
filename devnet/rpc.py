"""Node v2 JSON-RPC methods over the host-mode node's store.

Result shapes follow ``@cartesi/rpc`` 2.0.0-alpha.25 (the node's own TypeScript client):
every result is ``{"data": ...}``, lists add ``{"pagination": {total_count, limit,
offset}}`` (plain numbers), every other number is a hex string, binary data is ``0x`` hex.
A client written against a real node works against this one, and the reverse.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deml_protocol import addresses
from deml_protocol.outputs import decode_output
from devnet.contracts import decode_evm_advance
from devnet.merkle import OutputsMerkleTree
from devnet.store import ClaimRow, InputRow, OutputRow, ReportRow, Store

NODE_VERSION = "2.0.0-deml-hostmode"
DEFAULT_LIMIT = 50

INVALID_PARAMS = -32602
METHOD_NOT_FOUND = -32601
APPLICATION_NOT_FOUND = -32000
NOT_FOUND = -32003  # the node uses it for outputs; we use it for any missing item


class RpcFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class AppInfo:
    name: str
    address: str
    consensus: str
    chain_id: int
    epoch_length: int
    deployment_block: int
    template_hash: str


def _hex(number: int) -> str:
    return hex(number)


def _bytes(data: bytes | None) -> str | None:
    return None if data is None else "0x" + data.hex()


def _time(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RpcMethods:
    """The methods, by name; params may come by name (object) or by position (array)."""

    def __init__(self, app: AppInfo, store: Store, processed_count: Callable[[], int]) -> None:
        self.app, self.store, self._processed = app, store, processed_count
        self._tree_cache = OutputsMerkleTree()
        self._tree_lock = threading.Lock()
        self.table: dict[str, tuple[tuple[str, ...], Callable[..., Any]]] = {
            "cartesi_listApplications": (("limit", "offset", "descending"), self.list_apps),
            "cartesi_getApplication": (("application",), self.get_app),
            "cartesi_listInputs": (
                ("application", "epoch_index", "sender", "limit", "offset", "descending"),
                self.list_inputs,
            ),
            "cartesi_getInput": (("application", "input_index"), self.get_input),
            "cartesi_getProcessedInputCount": (("application",), self.processed_count),
            "cartesi_listOutputs": (
                (
                    "application",
                    "epoch_index",
                    "input_index",
                    "output_type",
                    "voucher_address",
                    "limit",
                    "offset",
                    "descending",
                ),
                self.list_outputs,
            ),
            "cartesi_getOutput": (("application", "output_index"), self.get_output),
            "cartesi_listReports": (
                ("application", "epoch_index", "input_index", "limit", "offset", "descending"),
                self.list_reports,
            ),
            "cartesi_getReport": (("application", "report_index"), self.get_report),
            "cartesi_listEpochs": (
                ("application", "status", "limit", "offset", "descending"),
                self.list_epochs,
            ),
            "cartesi_getEpoch": (("application", "epoch_index"), self.get_epoch),
            "cartesi_getLastAcceptedEpochIndex": (("application",), self.last_accepted_epoch),
            "cartesi_getChainId": ((), lambda: {"data": _hex(self.app.chain_id)}),
            "cartesi_getNodeVersion": ((), lambda: {"data": NODE_VERSION}),
        }

    def call(self, method: str, params: Any) -> Any:
        entry = self.table.get(method)
        if entry is None:
            raise RpcFailure(METHOD_NOT_FOUND, f"the method {method} does not exist")
        names, fn = entry
        if params is None:
            params = {}
        if isinstance(params, list):
            if len(params) > len(names):
                raise RpcFailure(INVALID_PARAMS, f"{method} takes at most {len(names)} params")
            params = dict(zip(names, params, strict=False))
        if not isinstance(params, dict) or set(params) - set(names):
            raise RpcFailure(INVALID_PARAMS, f"{method} takes params {list(names)}")
        return fn(**params)

    # ---- parameter checks -----------------------------------------------------------------
    def _check_app(self, application: Any) -> None:
        if not isinstance(application, str):
            raise RpcFailure(INVALID_PARAMS, "missing application (name or address)")
        if application.lower() not in (self.app.name.lower(), self.app.address):
            raise RpcFailure(APPLICATION_NOT_FOUND, "application not found")

    @staticmethod
    def _number(value: Any, name: str) -> int:
        try:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            return int(str(value), 16) if str(value).startswith("0x") else int(str(value))
        except ValueError:
            raise RpcFailure(INVALID_PARAMS, f"{name} must be a hex number") from None

    @staticmethod
    def _page(limit: Any, offset: Any) -> tuple[int, int]:
        limit = DEFAULT_LIMIT if limit is None else limit
        offset = 0 if offset is None else offset
        if not isinstance(limit, int) or not isinstance(offset, int) or limit < 1 or offset < 0:
            raise RpcFailure(INVALID_PARAMS, "limit must be >= 1 and offset >= 0")
        return limit, offset

    def _paginated(self, items: list[Any], total: int, limit: int, offset: int) -> Any:
        return {
            "data": items,
            "pagination": {"total_count": total, "limit": limit, "offset": offset},
        }

    # ---- applications ------------------------------------------------------------------------
    def _application(self) -> dict[str, Any]:
        a = self.app
        return {
            "name": a.name,
            "iapplication_address": a.address,
            "iconsensus_address": a.consensus,
            "iinputbox_address": addresses.INPUT_BOX,
            "template_hash": a.template_hash,
            "epoch_length": _hex(a.epoch_length),
            "data_availability": "0xb12c9ede" + "00" * 12 + addresses.INPUT_BOX[2:],
            "consensus_type": "AUTHORITY",
            "enabled": True,
            "state": "ENABLED",
            "status": "OK",
            "iinputbox_block": _hex(a.deployment_block),
            "last_input_check_block": _hex(int(self.store.get_meta("scanned_block") or 0)),
            "processed_inputs": _hex(self._processed()),
        }

    def list_apps(self, limit: Any = None, offset: Any = None, descending: Any = False) -> Any:
        limit, offset = self._page(limit, offset)
        return self._paginated([self._application()][offset : offset + limit], 1, limit, offset)

    def get_app(self, application: Any = None) -> Any:
        self._check_app(application)
        return {"data": self._application()}

    def processed_count(self, application: Any = None) -> Any:
        self._check_app(application)
        return {"data": _hex(self._processed())}

    # ---- inputs ------------------------------------------------------------------------------
    def _input(self, row: InputRow) -> dict[str, Any]:
        meta, payload = decode_evm_advance(row.raw)
        decoded = {
            "chain_id": _hex(meta["chain_id"]),
            "application_contract": meta["app_contract"],
            "sender": meta["msg_sender"],
            "block_number": _hex(meta["block_number"]),
            "block_timestamp": _hex(meta["block_timestamp"]),
            "prev_randao": meta["prev_randao"],
            "index": _hex(meta["input_index"]),
            "payload": "0x" + payload.hex(),
        }
        when = _time(meta["block_timestamp"])
        return {
            "epoch_index": _hex(row.block_number // self.app.epoch_length),
            "index": _hex(row.index),
            "block_number": _hex(row.block_number),
            "raw_data": "0x" + row.raw.hex(),
            "decoded_data": decoded,
            "status": row.status,
            "machine_hash": None,
            "outputs_hash": _bytes(row.outputs_hash),
            "transaction_hash": row.tx_hash,
            "transaction_reference": row.tx_hash,
            "created_at": when,
            "updated_at": when,
        }

    def list_inputs(
        self,
        application: Any = None,
        epoch_index: Any = None,
        sender: Any = None,
        limit: Any = None,
        offset: Any = None,
        descending: Any = False,
    ) -> Any:
        self._check_app(application)
        limit, offset = self._page(limit, offset)
        where, args = self._epoch_filter(epoch_index, "block_number")
        rows = [
            r
            for r in self.store.inputs(where=where, args=args, descending=bool(descending))
            if sender is None or decode_evm_advance(r.raw)[0]["msg_sender"] == sender.lower()
        ]
        page = rows[offset : offset + limit]
        return self._paginated([self._input(r) for r in page], len(rows), limit, offset)

    def get_input(self, application: Any = None, input_index: Any = None) -> Any:
        self._check_app(application)
        index = self._number(input_index, "input_index")
        rows = self.store.inputs(where="idx = ?", args=(index,))
        if not rows:
            raise RpcFailure(NOT_FOUND, "input not found")
        return {"data": self._input(rows[0])}

    def _epoch_filter(self, epoch_index: Any, column: str) -> tuple[str, tuple[int, ...]]:
        if epoch_index is None:
            return "1", ()
        epoch = self._number(epoch_index, "epoch_index")
        length = self.app.epoch_length
        return f"{column} BETWEEN ? AND ?", (epoch * length, (epoch + 1) * length - 1)

    # ---- outputs and reports -------------------------------------------------------------------
    def _siblings(self, index: int) -> list[str] | None:
        """Proof against the first accepted claim that covers the output, once there is one."""
        for claim in self.store.claims():
            if claim.output_count > index:
                with self._tree_lock:
                    self._sync_tree()
                    siblings = self._tree_cache.siblings(index, leaf_count=claim.output_count)
                return ["0x" + s.hex() for s in siblings]
        return None

    def _sync_tree(self) -> None:
        """Our own copy of the outputs tree, extended from the store (outputs only grow)."""
        known = len(self._tree_cache)
        fresh = self.store.outputs(where="idx >= ?", args=(known,))
        self._tree_cache.extend(row.hash for row in fresh)

    def _output(self, row: OutputRow, *, with_proof: bool = True) -> dict[str, Any]:
        decoded = decode_output(row.raw)
        shown = {
            k: (
                "0x" + v.hex()
                if isinstance(v, bytes)
                else _hex(v)
                if isinstance(v, int)
                else str(v).lower()
                if k == "destination"
                else v
            )
            for k, v in decoded.items()
        }
        block = self._input_block(row.input_index)
        return {
            "epoch_index": _hex(block // self.app.epoch_length),
            "input_index": _hex(row.input_index),
            "index": _hex(row.index),
            "raw_data": "0x" + row.raw.hex(),
            "decoded_data": shown,
            "hash": "0x" + row.hash.hex(),
            "output_hashes_siblings": self._siblings(row.index) if with_proof else None,
            "execution_transaction_hash": None,
        }

    def _input_block(self, input_index: int) -> int:
        rows = self.store.inputs(where="idx = ?", args=(input_index,))
        return rows[0].block_number if rows else 0

    def list_outputs(
        self,
        application: Any = None,
        epoch_index: Any = None,
        input_index: Any = None,
        output_type: Any = None,
        voucher_address: Any = None,
        limit: Any = None,
        offset: Any = None,
        descending: Any = False,
    ) -> Any:
        self._check_app(application)
        limit, offset = self._page(limit, offset)
        where, args = self._row_filter(epoch_index, input_index)
        rows = self.store.outputs(where=where, args=args, descending=bool(descending))
        if output_type is not None:
            wanted = output_type if isinstance(output_type, list) else [output_type]
            rows = [r for r in rows if "0x" + r.raw[:4].hex() in [w.lower() for w in wanted]]
        if voucher_address is not None:
            rows = [
                r
                for r in rows
                if str(decode_output(r.raw).get("destination", "")).lower()
                == voucher_address.lower()
            ]
        page = [self._output(r) for r in rows[offset : offset + limit]]
        return self._paginated(page, len(rows), limit, offset)

    def _row_filter(self, epoch_index: Any, input_index: Any) -> tuple[str, tuple[int, ...]]:
        """SQL for outputs/reports of one input and/or one epoch (epochs are block windows)."""
        clauses, args = ["1"], []
        if input_index is not None:
            clauses.append("input_index = ?")
            args.append(self._number(input_index, "input_index"))
        if epoch_index is not None:
            epoch, length = self._number(epoch_index, "epoch_index"), self.app.epoch_length
            clauses.append(
                "input_index IN (SELECT idx FROM inputs WHERE block_number BETWEEN ? AND ?)"
            )
            args += [epoch * length, (epoch + 1) * length - 1]
        return " AND ".join(clauses), tuple(args)

    def get_output(self, application: Any = None, output_index: Any = None) -> Any:
        self._check_app(application)
        index = self._number(output_index, "output_index")
        rows = self.store.outputs(where="idx = ?", args=(index,))
        if not rows:
            raise RpcFailure(NOT_FOUND, "output not found")
        return {"data": self._output(rows[0])}

    def _report(self, row: ReportRow) -> dict[str, Any]:
        block = self._input_block(row.input_index)
        return {
            "epoch_index": _hex(block // self.app.epoch_length),
            "input_index": _hex(row.input_index),
            "index": _hex(row.index),
            "raw_data": "0x" + row.raw.hex(),
        }

    def list_reports(
        self,
        application: Any = None,
        epoch_index: Any = None,
        input_index: Any = None,
        limit: Any = None,
        offset: Any = None,
        descending: Any = False,
    ) -> Any:
        self._check_app(application)
        limit, offset = self._page(limit, offset)
        where, args = self._row_filter(epoch_index, input_index)
        rows = self.store.reports(where=where, args=args, descending=bool(descending))
        page = [self._report(r) for r in rows[offset : offset + limit]]
        return self._paginated(page, len(rows), limit, offset)

    def get_report(self, application: Any = None, report_index: Any = None) -> Any:
        self._check_app(application)
        rows = self.store.reports(
            where="idx = ?", args=(self._number(report_index, "report_index"),)
        )
        if not rows:
            raise RpcFailure(NOT_FOUND, "report not found")
        return {"data": self._report(rows[0])}

    # ---- epochs ------------------------------------------------------------------------------
    def _epochs(self) -> list[dict[str, Any]]:
        length = self.app.epoch_length
        claims = {c.epoch: c for c in self.store.claims()}
        scanned = int(self.store.get_meta("scanned_block") or 0)
        return [self._epoch(k, claims.get(k), scanned) for k in self.store.input_epochs(length)]

    def _epoch(self, k: int, claim: ClaimRow | None, scanned: int) -> dict[str, Any]:
        length = self.app.epoch_length
        first, last = k * length, (k + 1) * length - 1
        inputs = self.store.inputs(where="block_number BETWEEN ? AND ?", args=(first, last))
        status = "CLAIM_ACCEPTED" if claim else "CLOSED" if last <= scanned else "OPEN"
        return {
            "index": _hex(k),
            "first_block": _hex(first),
            "last_block": _hex(last),
            "input_index_lower_bound": _hex(inputs[0].index if inputs else 0),
            "input_index_upper_bound": _hex(inputs[-1].index + 1 if inputs else 0),
            "machine_hash": None,
            "outputs_merkle_root": _bytes(claim.root if claim else None),
            "outputs_merkle_proof": None,
            "claim_transaction_hash": claim.tx_hash if claim else None,
            "status": status,
            "virtual_index": _hex(k),
        }

    def list_epochs(
        self,
        application: Any = None,
        status: Any = None,
        limit: Any = None,
        offset: Any = None,
        descending: Any = False,
    ) -> Any:
        self._check_app(application)
        limit, offset = self._page(limit, offset)
        epochs = [e for e in self._epochs() if status is None or e["status"] == status]
        if descending:
            epochs.reverse()
        return self._paginated(epochs[offset : offset + limit], len(epochs), limit, offset)

    def get_epoch(self, application: Any = None, epoch_index: Any = None) -> Any:
        self._check_app(application)
        wanted = _hex(self._number(epoch_index, "epoch_index"))
        for epoch in self._epochs():
            if epoch["index"] == wanted:
                return {"data": epoch}
        raise RpcFailure(NOT_FOUND, "epoch not found")

    def last_accepted_epoch(self, application: Any = None) -> Any:
        self._check_app(application)
        claims = self.store.claims()
        if not claims:
            raise RpcFailure(NOT_FOUND, "no accepted epoch yet")
        return {"data": _hex(claims[-1].epoch)}
