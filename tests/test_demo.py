"""`make demo` keeps working: the whole story as a subprocess, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.devnet
REPO = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "demo"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "copycat received       0.0000 DEML" in done.stdout
    assert "of 9000 escrowed: OK" in done.stdout
