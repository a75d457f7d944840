"""A local anvil chain for development and tests, started from the npm package's binary.

anvil comes from ``@foundry-rs/anvil`` in ``node_modules`` (pinned in package.json), so
every developer and CI run the same node without a Foundry install. The process must never
outlive us: it runs in its own process group (so stopping it kills only what we started)
and asks the kernel for ``SIGKILL`` when its parent dies (``PR_SET_PDEATHSIG``), which
covers even a ``SIGKILL``-ed test run.
"""

from __future__ import annotations

import ctypes
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final

import requests

__all__ = [
    "DEFAULT_MNEMONIC",
    "DEV_CHAIN_ID",
    "Anvil",
    "AnvilConfig",
    "AnvilError",
    "AnvilNotInstalled",
    "find_anvil",
    "free_port",
]

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
DEV_CHAIN_ID: Final = 31337
#: The Foundry/Hardhat test mnemonic; also the Cartesi CLI devnet's CARTESI_AUTH_MNEMONIC.
DEFAULT_MNEMONIC: Final = "test test test test test test test test test test test junk"
_PR_SET_PDEATHSIG: Final = 1
_ARCHES: Final = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
_PORT_ATTEMPTS: Final = 3


class AnvilError(RuntimeError):
    """anvil could not be started or did not answer; the message includes its log tail."""


class AnvilNotInstalled(AnvilError):
    """The npm packages are missing: ``make setup`` installs them."""


@dataclass(frozen=True, slots=True)
class AnvilConfig:
    """How to run anvil. ``block_time_s=None`` means automine: one block per transaction.
    With ``block_time_s`` a block is mined every that many seconds; ``mixed_mining`` keeps
    automine on as well (anvil ``--mixed-mining``): transactions are still mined at once, and
    an idle chain still moves on (what ``cartesi run``'s devnet does)."""

    chain_id: int = DEV_CHAIN_ID
    mnemonic: str = DEFAULT_MNEMONIC
    block_time_s: float | None = None
    mixed_mining: bool = False
    hardfork: str | None = None
    accounts: int = 10
    balance_eth: int = 10_000
    host: str = "127.0.0.1"
    startup_timeout_s: float = 20.0
    #: 0: a free port. A fixed port lets a restarted anvil keep its URL.
    port: int = 0
    #: ``--state``: load the chain from this file if it exists and dump it there on exit
    #: (SIGTERM), with the historical states, so a restart keeps blocks, hashes and logs.
    state_path: Path | None = None


def find_anvil(root: Path = REPO_ROOT) -> Path:
    """The anvil binary of the platform package npm installed next to ``@foundry-rs/anvil``."""
    system = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform)
    arch = _ARCHES.get(platform.machine().lower())
    if system is None or arch is None:
        raise AnvilNotInstalled(
            f"@foundry-rs/anvil ships no binary for {sys.platform}/{platform.machine()}"
        )
    exe = "anvil.exe" if system == "win32" else "anvil"
    binary = root / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / exe
    if not binary.is_file():
        raise AnvilNotInstalled(f"anvil not found at {binary}: run `make setup` (npm install)")
    return binary


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out for port 0; free unless someone races us."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent(parent_pid: int) -> None:
    """preexec_fn: SIGKILL this child when the thread that forked it dies (Linux only).

    If the parent already died between fork and prctl, the signal would never come, so
    the child exits at once instead.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(127)
    if os.getppid() != parent_pid:
        os._exit(127)


class Anvil:
    """One anvil process on a free loopback port; a context manager.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that started anvil exits, so start it from
    a thread that lives as long as you need the chain (the main thread, in pytest).
    """

    def __init__(
        self,
        config: AnvilConfig | None = None,
        *,
        log_path: Path | None = None,
        binary: Path | None = None,
    ) -> None:
        self.config = config or AnvilConfig()
        self._binary = binary
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._port = 0

    @property
    def url(self) -> str:
        if self._process is None:
            raise AnvilError("anvil is not running: call start() or use `with Anvil() as a:`")
        return f"http://{self.config.host}:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> Anvil:
        """Start anvil and return once it answers ``eth_chainId`` with the right id."""
        if self._process is not None:
            raise AnvilError(f"anvil is already running (pid {self._process.pid})")
        binary = self._binary or find_anvil()
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="deml-anvil-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        for attempt in range(_PORT_ATTEMPTS):
            self._port = self.config.port or free_port(self.config.host)
            self._spawn(binary)
            if self._wait_ready():
                return self
            in_use = "Address already in use" in self.log_tail()
            self.stop()
            if not in_use or self.config.port or attempt == _PORT_ATTEMPTS - 1:
                break
        raise AnvilError(
            f"anvil did not answer eth_chainId within {self.config.startup_timeout_s}s "
            f"(log {self._log_path}):\n{self.log_tail()}"
        )

    def _command(self, binary: Path) -> list[str]:
        cfg = self.config
        cmd = [
            str(binary),
            *("--host", cfg.host, "--port", str(self._port)),
            *("--chain-id", str(cfg.chain_id), "--mnemonic", cfg.mnemonic),
            *("--accounts", str(cfg.accounts), "--balance", str(cfg.balance_eth)),
        ]
        if cfg.block_time_s is not None:
            cmd += ["--block-time", f"{cfg.block_time_s:g}"]
            if cfg.mixed_mining:
                cmd.append("--mixed-mining")
        if cfg.hardfork is not None:
            cmd += ["--hardfork", cfg.hardfork]
        if cfg.state_path is not None:
            cmd += ["--state", str(cfg.state_path), "--preserve-historical-states"]
        return cmd

    def _spawn(self, binary: Path) -> None:
        assert self._log_path is not None
        parent_pid = os.getpid()
        with open(self._log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._command(binary),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: _die_with_parent(parent_pid),
            )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.config.startup_timeout_s
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        with requests.Session() as session:
            while time.monotonic() < deadline:
                if not self.is_running:
                    return False
                try:
                    reply = session.post(self.url, json=body, timeout=1.0).json()
                except (requests.RequestException, ValueError):
                    time.sleep(0.02)
                    continue
                if int(reply["result"], 16) != self.config.chain_id:
                    raise AnvilError(f"port {self._port} answers chain id {reply['result']}")
                return True
        return False

    def stop(self, *, grace_s: float = 5.0) -> None:
        """SIGTERM the process group, then SIGKILL it after ``grace_s``. Idempotent."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return  # already exited and reaped: its pid may belong to someone else now
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        process.poll()

    def log_tail(self, max_chars: int = 8000) -> str:
        """The end of anvil's log, for error messages and failed-test reports."""
        if self._log_path is None or not self._log_path.exists():
            return ""
        with open(self._log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - max_chars))
            return log.read().decode("utf-8", "replace")

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
