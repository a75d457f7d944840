"""The DApp in this process, behind the guest API, with no HTTP and no subprocess.

:class:`InProcessMachine` has the interface of :class:`~devnet.host_machine.HostMachine`
(``advance``, ``inspect``, ``is_alive``, a context manager) and runs the same code path:
``dapp.service.serve`` in a thread, talking to a :class:`GuestServer` through
:class:`DirectRollup`, which hands the guest API's JSON bodies (``/finish``, ``/notice``, ...)
to the server's own handlers instead of sending them over a socket (each request through a
JSON round trip, so nothing passes that HTTP would not carry). Only the socket and the
process start are skipped (about 1 s per machine), so tests of the rules use this one, and
a few tests keep the real process and HTTP loop (``HostMachine``). Like ``HostMachine``, the
DApp's settings come from ``os.environ`` updated with ``env``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from dapp.app import DApp
from dapp.config import Config
from dapp.rollup import RollupError
from dapp.service import serve

from .guest_server import BadRequest, GuestServer, MachineHalted, Result

__all__ = ["DirectRollup", "InProcessMachine"]


class _Closed(RollupError):
    """The server closed: the end of the machine, not a failure."""


class DirectRollup:
    """``dapp.rollup.Rollup`` straight into a :class:`GuestServer`: same bodies, no HTTP."""

    def __init__(self, server: GuestServer) -> None:
        self.server = server

    def finish(self, status: str) -> dict[str, Any]:
        try:
            request = self.server.finish(status)
        except BadRequest as exc:  # the HTTP server answers 400: RollupServer raises this
            raise RollupError(f"/finish: {exc}") from exc
        if request is None:
            raise _Closed("the guest server closed")
        decoded: dict[str, Any] = json.loads(json.dumps(request))  # only what JSON carries
        return decoded

    def notice(self, payload: bytes) -> int:
        return self._output("/notice", {"payload": "0x" + payload.hex()})

    def voucher(self, destination: str, value: int, payload: bytes) -> int:
        body = {
            "destination": destination,
            "value": "0x" + format(value, "064x"),
            "payload": "0x" + payload.hex(),
        }
        return self._output("/voucher", body)

    def report(self, payload: bytes) -> None:
        self._emit("/report", {"payload": "0x" + payload.hex()})

    def _output(self, path: str, body: dict[str, str]) -> int:
        reply = self._emit(path, body)
        assert reply is not None  # outputs always get an index
        return int(reply["index"])

    def _emit(self, path: str, body: dict[str, str]) -> dict[str, Any] | None:
        try:
            return self.server.emit(path, body)
        except BadRequest as exc:
            raise RollupError(f"{path}: {exc}") from exc


class InProcessMachine:
    def __init__(self, *, env: Mapping[str, str] | None = None, timeout: float = 180.0) -> None:
        self.timeout = timeout
        self.dapp = DApp(config=Config.from_env({**os.environ, **(env or {})}))
        self.server = GuestServer(listen=False)
        self._thread = threading.Thread(target=self._serve, name="dapp", daemon=True)
        self.error: BaseException | None = None

    def _serve(self) -> None:
        try:
            serve(DirectRollup(self.server), self.dapp)
        except _Closed:
            pass  # stop(): the machine shuts down
        except BaseException as exc:  # a DApp that dies is a halted machine; keep why
            self.error = exc

    def start(self) -> InProcessMachine:
        self.server.start()
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def advance(self, metadata: Mapping[str, Any], payload: bytes) -> Result:
        return self._checked(
            lambda: self.server.advance(
                dict(metadata), payload, timeout=self.timeout, is_alive=self.is_alive
            )
        )

    def inspect(self, payload: bytes) -> Result:
        return self._checked(
            lambda: self.server.inspect(payload, timeout=self.timeout, is_alive=self.is_alive)
        )

    def _checked(self, call: Callable[[], Result]) -> Result:
        try:
            result = call()
        except MachineHalted as exc:
            if self.error is None:
                raise
            raise MachineHalted(f"{exc}: {self.error!r}") from self.error
        return result

    def stop(self) -> None:
        self.server.close()
        self._thread.join(5)

    def __enter__(self) -> InProcessMachine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
