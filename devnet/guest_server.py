"""A stand-in for the Cartesi Machine's guest HTTP API (machine-guest-tools 0.17).

The DApp process talks to this server exactly as it would to ``rollup-http-server`` inside the
machine — same paths, status codes and JSON shapes (fact sheet §1) — so it cannot tell the
difference. Tests and the host-mode node feed requests through the Python API
(:meth:`GuestServer.advance`, :meth:`GuestServer.inspect`), which block until the DApp calls
``/finish`` again.

Outputs get the global output index (shared by notices and vouchers, never reset). A rejected
advance discards its outputs and the index rolls back with it, as the machine's Merkle tree
does; reports are always kept.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from deml_protocol.outputs import (
    delegate_call_voucher_output,
    notice_output,
    voucher_output,
)

JSON_BODY_LIMIT = 5 << 20
_VALUE = re.compile(r"^0x[0-9a-fA-F]{1,64}$")
METADATA_FIELDS = (
    "chain_id",
    "app_contract",
    "msg_sender",
    "block_number",
    "block_timestamp",
    "prev_randao",
    "input_index",
)


class MachineHalted(RuntimeError):
    """The DApp stopped answering: it exited, raised an exception, or ran out of time."""


@dataclass(frozen=True, slots=True)
class Output:
    index: int
    raw: bytes  # Notice / Voucher / DelegateCallVoucher call data, as hashed into the tree


@dataclass(slots=True)
class Result:
    """How a request ended: status is "accepted", "rejected" or "exception"."""

    status: str = ""
    outputs: list[Output] = field(default_factory=list)
    reports: list[bytes] = field(default_factory=list)
    exception: bytes | None = None


@dataclass(slots=True)
class _Request:
    kind: str  # "advance_state" | "inspect_state"
    body: dict[str, Any]
    result: Result = field(default_factory=Result)
    done: threading.Event = field(default_factory=threading.Event)


class BadRequest(Exception):
    pass


class GuestServer:
    """``listen=False`` serves only the Python side of both halves (``finish``/``emit`` called
    directly, as ``devnet.in_process`` does): no socket, no HTTP thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        listen: bool = True,
        next_output_index: int = 0,
    ) -> None:
        self._cond = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._current: _Request | None = None
        # A DApp started from a snapshot continues the global output index where it was.
        self._next_index = next_output_index
        #: Set once the DApp first asks for a request: it has started (and loaded its state).
        self.ready = threading.Event()
        #: Called (from the HTTP thread) with each request as it is handed to the DApp: what
        #: fault-injection tests hook to act while an input is in the DApp's hands.
        self.on_handout: Callable[[str, dict[str, Any]], None] | None = None
        self._closing = False
        self._httpd: _QuietServer | None = None
        self._thread: threading.Thread | None = None
        if listen:
            self._httpd = _QuietServer((host, port), _make_handler(self))
            self._httpd.daemon_threads = True
            # A short poll: shutdown() waits for the loop to look (the default 0.5 s per stop).
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
            )

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("this guest server does not listen (listen=False)")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def next_output_index(self) -> int:
        return self._next_index

    def start(self) -> GuestServer:
        if self._thread is not None:
            self._thread.start()
        return self

    def close(self) -> None:
        with self._cond:
            self._closing = True
            waiting = list(self._queue) + ([self._current] if self._current else [])
            for request in waiting:  # nobody will finish them now
                request.result.status = "exception"
                request.result.exception = b"guest server closed"
                request.done.set()
            self._cond.notify_all()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> GuestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- Python side -------------------------------------------------------------------
    def advance(
        self,
        metadata: dict[str, Any],
        payload: bytes,
        *,
        timeout: float | None = 180.0,
        is_alive: Callable[[], bool] = lambda: True,
    ) -> Result:
        missing = [name for name in METADATA_FIELDS if name not in metadata]
        if missing:
            raise ValueError(f"advance metadata lacks {missing}")
        meta = {name: metadata[name] for name in METADATA_FIELDS}
        body = {"metadata": meta, "payload": "0x" + payload.hex()}
        return self._submit(_Request("advance_state", body), timeout, is_alive)

    def inspect(
        self,
        payload: bytes,
        *,
        timeout: float | None = 180.0,
        is_alive: Callable[[], bool] = lambda: True,
    ) -> Result:
        body = {"payload": "0x" + payload.hex()}
        return self._submit(_Request("inspect_state", body), timeout, is_alive)

    def _submit(
        self, request: _Request, timeout: float | None, is_alive: Callable[[], bool]
    ) -> Result:
        with self._cond:
            self._queue.append(request)
            self._cond.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout  # None: no limit
        while not request.done.wait(0.05):
            if not is_alive():
                raise MachineHalted("the DApp process exited")
            if deadline is not None and time.monotonic() > deadline:
                raise MachineHalted(f"no /finish within {timeout} s")
        if request.result.status == "exception":
            raise MachineHalted(f"the DApp raised an exception: {request.result.exception!r}")
        return request.result

    # ---- HTTP side (called from handler threads) -----------------------------------------
    def finish(self, status: Any) -> dict[str, Any] | None:
        if status not in ("accept", "reject"):
            raise BadRequest("status must be 'accept' or 'reject'")
        with self._cond:
            if self._current is not None:
                self._complete(self._current, "accepted" if status == "accept" else "rejected")
            self.ready.set()
            while not self._queue and not self._closing:
                self._cond.wait()
            if self._closing:
                return None
            self._current = self._queue.popleft()
            kind, body = self._current.kind, self._current.body
        if self.on_handout is not None:
            self.on_handout(kind, body)
        return {"request_type": kind, "data": body}

    def emit(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        with self._cond:
            current = self._current
            if current is None:
                raise BadRequest("no request is being processed; call /finish first")
            if path == "/report":
                current.result.reports.append(_payload(body))
                return None
            if path == "/exception":
                current.result.exception = _payload(body)
                self._complete(current, "exception")
                return None
            if current.kind != "advance_state":
                raise BadRequest("outputs can only be emitted while processing an advance")
            index = self._next_index + len(current.result.outputs)
            current.result.outputs.append(Output(index, _output(path, body)))
            return {"index": index}

    def _complete(self, request: _Request, status: str) -> None:
        result = request.result
        result.status = status
        if request.kind == "advance_state" and status == "accepted":
            self._next_index += len(result.outputs)
        else:
            result.outputs = []  # rolled back with the machine
        self._current = None
        request.done.set()


def _payload(body: dict[str, Any], name: str = "payload") -> bytes:
    text = body.get(name)
    if not isinstance(text, str):
        raise BadRequest(f"missing field `{name}`")
    try:
        return bytes.fromhex(text[2:])  # like the real server: the 0x is dropped unchecked
    except ValueError as exc:
        raise BadRequest(f"invalid hex in `{name}`: {exc}") from exc


def _address(body: dict[str, Any]) -> str:
    text = body.get("destination")
    if not isinstance(text, str) or len(text) != 42:
        raise BadRequest("address not valid")
    try:
        bytes.fromhex(text[2:])
    except ValueError:
        raise BadRequest("address not valid") from None
    return "0x" + text[2:].lower()


def _value(body: dict[str, Any]) -> int:
    text = body.get("value", "0x" + "0" * 64)
    if not isinstance(text, str) or not _VALUE.match(text) or len(text) % 2:
        raise BadRequest("value must be 0x followed by an even number (up to 64) of hex digits")
    return int(text, 16)


def _output(path: str, body: dict[str, Any]) -> bytes:
    if path == "/notice":
        return notice_output(_payload(body))
    if path == "/voucher":
        return voucher_output(_address(body), _value(body), _payload(body))
    return delegate_call_voucher_output(_address(body), _payload(body))


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a DApp that went away mid-request (e.g. on shutdown) is not our error


def _make_handler(server: GuestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as separate writes; without TCP_NODELAY, Nagle's algorithm
        # and the peer's delayed ACK add ~40 ms to every request on a kept-alive connection.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            try:
                body = self._json()
                self._route(body)
            except BadRequest as exc:
                self._send(400, str(exc).encode(), "text/plain")

        def _route(self, body: dict[str, Any]) -> None:
            if self.path == "/finish":
                request = server.finish(body.get("status"))
                if request is None:
                    self._send(503, b"server shutting down", "text/plain")
                else:
                    self._send(200, json.dumps(request).encode(), "application/json")
            elif self.path in ("/notice", "/voucher", "/delegate-call-voucher"):
                reply = server.emit(self.path, body)
                self._send(201, json.dumps(reply).encode(), "application/json")
            elif self.path in ("/report", "/exception"):
                server.emit(self.path, body)
                self._send(202, b"", "text/plain")
            else:
                self._send(404, b"not found", "text/plain")

        def _json(self) -> dict[str, Any]:
            header = self.headers.get("Content-Length", "0")
            if not (header.isascii() and header.isdigit()):
                raise BadRequest("Content-Length must be a non-negative integer")
            length = int(header)
            if length > JSON_BODY_LIMIT:
                raise BadRequest("JSON payload is larger than allowed")
            try:
                body = json.loads(self.rfile.read(length) or b"null")
            except json.JSONDecodeError as exc:
                raise BadRequest(f"Json deserialize error: {exc}") from exc
            if not isinstance(body, dict):
                raise BadRequest("Json deserialize error: expected an object")
            return body

        def _send(self, code: int, data: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # quiet: the node logs what matters

    return Handler
