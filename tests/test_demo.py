"""`make demo` keeps working: the whole story as a subprocess, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.devnet
REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end_through_the_console(tmp_path: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(REPO), "COLUMNS": "120"}
    done = subprocess.run(
        [sys.executable, "-m", "demo"],
        cwd=tmp_path,  # where the plot goes
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    out = done.stdout
    # the story is told as the commands a user types, each printed before it runs
    for command in (
        "job create",
        "train 1",
        "submit 1",
        "job reveal 1",
        "job close 1",
        "execute",
        "verify 1",
        "job report 1 --plot",
    ):
        assert re.search(rf"^\$ deml .*{re.escape(command)}", out, re.MULTILINE), command
    copycat = next(line for line in out.splitlines() if "│ copycat" in line)
    assert copycat.rstrip(" │").endswith("0.0000 DMLR")
    for owner in ("alice", "bob", "carol"):
        row = next(line for line in out.splitlines() if f"│ {owner}" in line)
        assert not row.rstrip(" │").endswith(" 0.0000 DMLR"), row
    assert "of 9000 escrowed: OK" in out
    assert (tmp_path / "demo-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
