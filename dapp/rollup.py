"""The guest HTTP API of machine-guest-tools 0.17 (``ROLLUP_HTTP_SERVER_URL``).

The only module of the DApp that speaks HTTP. One persistent session; every payload is
``0x`` + hex; a voucher's value is always 32 bytes (64 hex digits), because the server
rejects odd digit counts.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests


class RollupError(RuntimeError):
    """The rollup server refused a call: a bug on our side, not bad input."""


class Rollup(Protocol):
    """What the rollup loop needs of the guest API; :class:`RollupServer` speaks it over HTTP."""

    def finish(self, status: str) -> dict[str, Any]: ...

    def notice(self, payload: bytes) -> int: ...

    def voucher(self, destination: str, value: int, payload: bytes) -> int: ...

    def report(self, payload: bytes) -> None: ...


class RollupServer:
    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self.session = session or requests.Session()

    def finish(self, status: str) -> dict[str, Any]:
        """Report the last request's status; block until the next request arrives."""
        while True:
            reply = self.session.post(f"{self.url}/finish", json={"status": status})
            if reply.status_code == 202:  # old host mode: nothing yet, ask again
                continue
            self._check(reply, "/finish")
            request: dict[str, Any] = reply.json()
            return request

    def notice(self, payload: bytes) -> int:
        return self._output("/notice", {"payload": _hex(payload)})

    def voucher(self, destination: str, value: int, payload: bytes) -> int:
        body = {
            "destination": destination,
            "value": "0x" + format(value, "064x"),
            "payload": _hex(payload),
        }
        return self._output("/voucher", body)

    def delegate_call_voucher(self, destination: str, payload: bytes) -> int:
        return self._output(
            "/delegate-call-voucher", {"destination": destination, "payload": _hex(payload)}
        )

    def report(self, payload: bytes) -> None:
        self._check(
            self.session.post(f"{self.url}/report", json={"payload": _hex(payload)}), "/report"
        )

    def exception(self, payload: bytes) -> None:
        self._check(
            self.session.post(f"{self.url}/exception", json={"payload": _hex(payload)}),
            "/exception",
        )

    def _output(self, path: str, body: dict[str, str]) -> int:
        reply = self.session.post(f"{self.url}{path}", json=body)
        self._check(reply, path)
        return int(reply.json()["index"])

    @staticmethod
    def _check(reply: requests.Response, path: str) -> None:
        if reply.status_code not in (200, 201, 202):
            raise RollupError(f"POST {path} -> {reply.status_code}: {reply.text[:200]}")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()
