"""The DApp as a host process behind a :class:`GuestServer`: our stand-in for a Cartesi Machine.

``HostMachine`` starts ``python -m dapp`` with ``ROLLUP_HTTP_SERVER_URL`` pointing at its own
guest server and forwards advance and inspect requests to it. Like the real
``rollup-http-server``, a DApp that exits is a halted machine (:class:`MachineHalted`).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from .guest_server import GuestServer, MachineHalted, Result

REPO_ROOT = Path(__file__).resolve().parent.parent
PR_SET_PDEATHSIG = 1

__all__ = ["HostMachine", "MachineHalted", "die_with_parent"]


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL if we die, even by SIGKILL (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class HostMachine:
    def __init__(
        self,
        *,
        env: Mapping[str, str] | None = None,
        log: IO[bytes] | None = None,
        timeout: float | None = 180.0,
        next_output_index: int = 0,
    ) -> None:
        self.timeout = timeout
        self._env = dict(env or {})
        self._log = log
        self.server = GuestServer(next_output_index=next_output_index)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> HostMachine:
        self.server.start()
        env = os.environ | self._env | {"ROLLUP_HTTP_SERVER_URL": self.server.url}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dapp"],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=die_with_parent,
        )
        return self

    def wait_ready(self) -> int | None:
        """Wait until the DApp asks for its first request (it started and loaded its state):
        None, or its exit status if it exited instead (a refused snapshot, a crash)."""
        while not self.server.ready.wait(0.05):
            if self.process is None or self.process.poll() is not None:
                return None if self.process is None else self.process.returncode
        return None

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def advance(self, metadata: Mapping[str, Any], payload: bytes) -> Result:
        return self.server.advance(
            dict(metadata), payload, timeout=self.timeout, is_alive=self.is_alive
        )

    def inspect(self, payload: bytes) -> Result:
        return self.server.inspect(payload, timeout=self.timeout, is_alive=self.is_alive)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.server.close()

    def __enter__(self) -> HostMachine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
