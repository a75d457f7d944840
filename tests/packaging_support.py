"""The fresh-venv installs of ``tests/test_packaging.py``, started as early as possible.

Its own module (imported as ``tests.packaging_support`` by both ``conftest.py`` and the
test), so the stash key that hands the early builds to the test is one object.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"


@dataclass(frozen=True)
class Installable:
    distribution: str
    directory: str  # in the repository, holding pyproject.toml and the package
    package: str
    pip_args: tuple[str, ...]  # what `pip install` is given, run from the repository


INSTALLABLE = [
    Installable("deml-protocol", "protocol", "deml_protocol", ("./protocol",)),
    # deml-protocol is on no index: the local one comes along, as in `make setup`.
    Installable(
        "deml-console",
        "frontend-console",
        "deml_console",
        ("./protocol", "./frontend-console[examples]"),
    ),
]


@dataclass
class Build:
    venv: Path
    process: subprocess.Popen[str]
    log: IO[str]

    def wait(self) -> Path:
        code = self.process.wait()
        self.log.seek(0)
        assert code == 0, f"pip install failed ({code}):\n{self.log.read()[-6000:]}"
        return self.venv / "bin" / "python"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


def start_builds(workdir: Path) -> dict[str, Build]:
    """Start every fresh-venv install at once, in the background; each test waits for its
    own. ``tests/conftest.py`` calls this as soon as collection ends, so the installs overlap
    the rest of the suite instead of adding to its wall time."""
    started: dict[str, Build] = {}
    for item in INSTALLABLE:
        base = workdir / item.distribution
        base.mkdir()
        venv = base / "venv"
        # --without-pip: creating the venv is instant and nothing but the package and its
        # dependencies lands in it; this venv's pip installs into it through --python.
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
        log = (base / "pip.log").open("w+", encoding="utf-8")
        command = [
            sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"),
            "install", "--quiet", "--no-input", "--no-compile", "-c", str(CONSTRAINTS),
            *item.pip_args,
        ]  # fmt: skip
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True, env=clean_env()
        )
        started[item.distribution] = Build(venv, process, log)
    return started


def stop_builds(started: dict[str, Build]) -> None:
    for build in started.values():
        if build.process.poll() is None:
            build.process.kill()
            build.process.wait()
        build.log.close()


BUILDS_KEY = pytest.StashKey[dict[str, Build]]()
