"""The unchanged DApp in the riscv64 root, under qemu-user, behind a host-side guest server.

The interface of :class:`devnet.host_machine.HostMachine` (``advance``, ``inspect``,
``is_alive``, a context manager), so the node's replay and the check use either. The code is
copied into the root as the Dockerfile lays it out (``deml_protocol/`` and ``dapp/`` side by
side), never bind-mounted: a root that is deleted can then never take the repository with it.
qemu-user shares the host's loopback, so the DApp reaches the guest server at 127.0.0.1.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from devnet.guest_server import GuestServer, Result
from devnet.host_machine import REPO_ROOT, die_with_parent

#: The image's ENV (Dockerfile), minus the URL, which points at our server.
IMAGE_ENV = {
    "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",
    "OMP_NUM_THREADS": "1",
}


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM): qemu and the emulated DApp together."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class QemuMachine:
    def __init__(
        self,
        root: Path,
        *,
        env: Mapping[str, str] | None = None,
        log: IO[bytes] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.root = root
        self.timeout = timeout
        self._env = dict(env or {})
        self._log = log
        self.server = GuestServer()
        self.process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    def start(self) -> QemuMachine:
        self.server.start()
        self._workdir = Path(tempfile.mkdtemp(prefix="deml-", dir=self.root / "opt"))
        skip = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(REPO_ROOT / "dapp", self._workdir / "dapp", ignore=skip)
        shutil.copytree(
            REPO_ROOT / "protocol" / "deml_protocol", self._workdir / "deml_protocol", ignore=skip
        )
        inside = "/" + str(self._workdir.relative_to(self.root))
        env = IMAGE_ENV | self._env | {"ROLLUP_HTTP_SERVER_URL": self.server.url}
        command = ["chroot", str(self.root), "env", "-i", *(f"{k}={v}" for k, v in env.items())]
        command += ["sh", "-c", f'cd "{inside}" && exec python3 -m dapp']
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=self._log, preexec_fn=die_with_parent
        )
        return self

    def is_alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def peak_rss_mib(self) -> float | None:
        return None if self.process is None else peak_rss_mib(self.process.pid)

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
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.server.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> QemuMachine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
