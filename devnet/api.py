"""The node's public HTTP interface on one port, as node v2 / the Cartesi CLI offer it.

- ``POST /inspect/<app name or address>``: the raw body is the inspect payload; the reply is
  ``{"status", "exception"?, "reports": [{"payload"}], "processed_input_count"}``.
- ``POST /rpc``: JSON-RPC 2.0 with the node v2 methods (:mod:`devnet.rpc`).
- ``POST /anvil``: the chain's JSON-RPC, forwarded as is to anvil (``cartesi run`` serves
  anvil at ``<node>/anvil`` too), when the API is given ``chain_url``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

from devnet.guest_server import MachineHalted, Result
from devnet.rpc import INVALID_PARAMS, RpcFailure, RpcMethods

log = logging.getLogger("devnet.api")

INSPECT_BODY_LIMIT = 2 << 20  # the machine's rx buffer
RPC_BODY_LIMIT = 1 << 20
CHAIN_BODY_LIMIT = 8 << 20  # a contract deployment through /anvil can be large
CHAIN_TIMEOUT_S = 30.0
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603


class NodeApi:
    def __init__(
        self,
        *,
        rpc: RpcMethods,
        inspect: Callable[[bytes], Result],
        app_names: tuple[str, ...],
        host: str = "127.0.0.1",
        port: int = 0,
        chain_url: str | None = None,
    ) -> None:
        self.rpc = rpc
        self.chain_url = chain_url
        self.inspect = inspect
        self.app_names = tuple(name.lower() for name in app_names)
        self._httpd = ThreadingHTTPServer((host, port), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> NodeApi:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def handle_inspect(self, app: str, body: bytes) -> tuple[int, Any]:
        if not app:
            return 400, "missing application"
        if app.lower() not in self.app_names:
            return 404, "Application not found"
        try:
            result = self.inspect(body)
        except MachineHalted as exc:
            return 200, {
                "status": "Exception",
                "exception": str(exc),
                "reports": [],
                "processed_input_count": self.rpc.processed_count(app)["data"],
            }
        status = "Accepted" if result.status == "accepted" else "Rejected"
        reports = [{"payload": "0x" + r.hex()} for r in result.reports]
        count = int(self.rpc.processed_count(app)["data"], 16)
        return 200, {"status": status, "reports": reports, "processed_input_count": count}

    def forward_to_chain(self, body: bytes) -> tuple[int, bytes]:
        """``POST /anvil``: the body to the chain's JSON-RPC, its reply back unchanged."""
        if self.chain_url is None:
            return 404, b"no chain behind this node API"
        try:
            got = requests.post(
                self.chain_url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=CHAIN_TIMEOUT_S,
            )
        except requests.RequestException as exc:
            return 502, f"the chain at {self.chain_url} did not answer: {exc}".encode()
        return got.status_code, got.content

    def handle_rpc(self, body: bytes) -> Any:
        try:
            request = json.loads(body)
        except json.JSONDecodeError:
            return _error(None, PARSE_ERROR, "parse error")
        if isinstance(request, list):
            return (
                [self._one(item) for item in request]
                if request
                else _error(None, INVALID_REQUEST, "empty batch")
            )
        return self._one(request)

    def _one(self, request: Any) -> Any:
        if (
            not isinstance(request, dict)
            or request.get("jsonrpc") != "2.0"
            or not isinstance(request.get("method"), str)
        ):
            return _error(None, INVALID_REQUEST, "invalid request")
        rid = request.get("id")
        try:
            result = self.rpc.call(request["method"], request.get("params"))
        except RpcFailure as exc:
            return _error(rid, exc.code, exc.message)
        except TypeError as exc:
            return _error(rid, INVALID_PARAMS, str(exc))
        except Exception:
            log.exception("JSON-RPC %s failed", request["method"])
            return _error(rid, INTERNAL_ERROR, "internal error")
        return {"jsonrpc": "2.0", "id": rid, "result": result}


def _content_length(header: str) -> int | None:
    """The declared body size, or None if it is not a plain non-negative integer."""
    return int(header) if header.isascii() and header.isdigit() else None


def _error(rid: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}


def _handler(api: NodeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as separate writes; without TCP_NODELAY, Nagle's algorithm
        # and the peer's delayed ACK add ~40 ms to every request on a kept-alive connection.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # noqa: N802
            length = _content_length(self.headers.get("Content-Length", "0"))
            if length is None:
                return self._send(400, "Content-Length must be a non-negative integer")
            if self.path.startswith("/inspect"):
                if length > INSPECT_BODY_LIMIT:
                    return self._send(413, "payload too large")
                body = self.rfile.read(length)
                code, reply = api.handle_inspect(self.path[len("/inspect/") :].strip("/"), body)
                return self._send(code, reply)
            if self.path.rstrip("/") == "/rpc":
                if length > RPC_BODY_LIMIT:
                    return self._send(413, "payload too large")
                return self._send(200, api.handle_rpc(self.rfile.read(length)))
            if self.path.rstrip("/") == "/anvil":
                if length > CHAIN_BODY_LIMIT:
                    return self._send(413, "payload too large")
                code, data = api.forward_to_chain(self.rfile.read(length))
                return self._send_bytes(code, data)
            self._send(404, "not found")

        def do_GET(self) -> None:  # noqa: N802
            self._send(405, "method not allowed")

        def _send(self, code: int, reply: Any) -> None:
            is_text = isinstance(reply, str)
            data = reply.encode() if is_text else json.dumps(reply).encode()
            self._send_bytes(code, data, "text/plain" if is_text else "application/json")

        def _send_bytes(self, code: int, data: bytes, kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
