"""``deml cid``: the CID on stdout, ``error[code]`` on stderr, exit 0 / 1 / 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deml_console.cli import app

HELLO_V1 = "bafkreide5semuafsnds3ugrvm6fbwuyw2ijpj43gwjdxemstjkfozi37hq"
HELLO_V0 = "QmNRCQWfgze6AbBCaT1rkrkV5tJ2aP4oTNPb5JZcXYywve"


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    path = tmp_path / "hello.txt"
    path.write_bytes(b"Hello world")
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    ("args", "expected"),
    [([], HELLO_V1), (["--cid-version", "1"], HELLO_V1), (["--cid-version", "0"], HELLO_V0)],
)
def test_cid_prints_the_ipfs_add_cid(
    runner: CliRunner, hello: Path, args: list[str], expected: str
) -> None:
    result = runner.invoke(app, ["cid", *args, str(hello)])
    assert result.exit_code == 0, result.output
    assert result.stdout == expected + "\n"
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("target", "code"),
    [("missing.bin", "file_not_found"), (".", "is_a_directory")],
)
def test_file_errors_exit_1_without_traceback(
    runner: CliRunner, tmp_path: Path, target: str, code: str
) -> None:
    result = runner.invoke(app, ["cid", str(tmp_path / target)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error[{code}]: ")
    assert "Traceback" not in result.output and result.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["cid", "--cid-version", "2", "x"], "--cid-version"),
        (["cid"], "Missing argument 'FILE'"),
        (["nope"], "No such command 'nope'"),
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, args: list[str], fragment: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error[usage]: ")
    assert fragment in result.stderr
    assert "Try 'deml" in result.stderr


def test_help_lists_cid(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "cid" in result.stdout


def test_console_script_subprocess(hello: Path) -> None:
    """The installed `deml` script, as a real process (its errors and exit codes are the
    same code path in-process: see the CliRunner tests above)."""
    deml = Path(sys.executable).with_name("deml")
    done = subprocess.run(
        [str(deml), "cid", "--cid-version", "0", str(hello)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, HELLO_V0 + "\n", "")
