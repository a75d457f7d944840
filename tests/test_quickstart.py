"""The README's quickstart, run as written: every command of its ``sh`` blocks, in order, in
a fresh directory, against the devnet it starts.

Two deviations, both about the machine rather than the commands: ``make setup`` has already
run (``make test`` did it) and ``source .venv/bin/activate`` is the PATH given to each
command; ``python -m devnet up`` runs in the background and listens on a free port (the
default port may be taken on a machine running its own devnet).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.devnet
REPO = Path(__file__).resolve().parent.parent
SECTION = "## Quickstart"


def quickstart_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    start = readme.index(SECTION)
    section = readme[start : readme.index("\n## ", start + len(SECTION))]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_quickstart_section_has_the_steps_a_newcomer_needs() -> None:
    commands = quickstart_commands()
    assert commands[:2] == ["make setup", ".venv/bin/python -m devnet up"]
    for step in ("job create", "train 1", "submit 1", "job reveal 1", "job close 1", "execute"):
        assert any(step in command for command in commands), step


def test_the_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    workdir = tmp_path
    env = os.environ | {
        "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "VIRTUAL_ENV": str(REPO / ".venv"),
        "PYTHONPATH": str(REPO),  # `python -m devnet` / `demo.data` from the repository
        "DEML_HOME": str(workdir / "home"),
        "COLUMNS": "120",
    }
    env = {k: v for k, v in env.items() if not k.startswith("DEML_") or k == "DEML_HOME"}
    devnet: subprocess.Popen[bytes] | None = None
    outputs: list[str] = []
    try:
        for command in quickstart_commands():
            if command in ("make setup", "source .venv/bin/activate"):
                continue
            if command.endswith("-m devnet up"):
                devnet = _start_devnet(command, workdir, env)
                continue
            done = subprocess.run(
                ["bash", "-c", command],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
            outputs.append(done.stdout)
    finally:
        if devnet is not None:
            devnet.send_signal(signal.SIGINT)
            devnet.wait(timeout=60)
    status, executed = outputs[-2], outputs[-1]
    assert "job 1 (finished)" in status
    assert re.search(r"│ executed", executed), executed


def _start_devnet(command: str, workdir: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    argv = shlex.split(command)
    argv[0] = str(REPO / argv[0]) if argv[0].startswith(".venv") else argv[0]
    devnet = subprocess.Popen(
        [*argv, "--port", "0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ready = workdir / ".devnet" / "devnet.json"
    deadline = time.monotonic() + 120  # not a speed check: only so a broken start cannot hang
    while not _complete(ready):
        assert devnet.poll() is None, devnet.stderr.read().decode() if devnet.stderr else ""
        assert time.monotonic() < deadline, "the devnet did not start in 120 s"
        time.sleep(0.2)
    return devnet


def _complete(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()))
    except (OSError, ValueError):  # not there yet, or being written
        return False
