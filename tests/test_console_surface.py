"""What every ``deml`` command shows a new user without a chain: its ``--help`` in an
80-column terminal, and the error codes docs/console.md promises."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from deml_console.cli import app

#: A command's summary (its help's first paragraph) fits on one line of its group's listing.
SUMMARY_CHARS = 64
#: ``error[code]`` in prose: the form, not a code.
PLACEHOLDER = "code"


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _words(text: str) -> list[str]:
    """The words a reader must see, whatever the layout (markdown's backticks dropped)."""
    return text.replace("`", "").split()


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "deml" for p, _ in COMMANDS]
)
def test_every_help_reads_well_in_80_columns(path: tuple[str, ...], command: Any) -> None:
    shown = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80", "NO_COLOR": "1"})
    assert shown.exit_code == 0, shown.output
    assert max(len(line) for line in shown.stdout.splitlines()) <= 80
    summary = (command.help or "").split("\n\n")[0]
    assert "\n" not in summary.strip() or not path, f"{path}: a one-line summary, then details"
    assert len(summary) <= SUMMARY_CHARS or not path, f"{path}: summary too long for the list"
    # Nothing is eaten as markup: every word of the help and of each option's help is shown,
    # in order (the layout may wrap and box it).
    flat = " ".join(re.sub(r"[│╭╮╰╯─]", " ", shown.stdout).split())
    texts = [command.help or ""] + [p.help for p in command.params if getattr(p, "help", None)]
    for text in texts:
        pattern = r"\W+".join(re.escape(w) for w in _words(text))
        assert re.search(pattern, flat), f"{path}: help not shown as written: {text!r}"


def _console_codes() -> set[str]:
    """Every code the console itself can print: the codes of the error classes in the modules
    the `deml` command imports (asked of a fresh interpreter: other tests import more), and
    the codes ``cli.py`` prints by hand."""
    import importlib
    import subprocess
    import sys

    import deml_console.cli as cli

    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, deml_console.cli; print(*sorted(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    modules = [importlib.import_module(m) for m in loaded if m.startswith("deml_console.")]
    codes = {
        str(value.__dict__["code"])
        for module in modules
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == module.__name__
        and isinstance(value.__dict__.get("code"), str)
    }
    source = Path(cli.__file__).read_text()
    by_hand = set(re.findall(r'fail\("(\w+)"', source)) | set(re.findall(r"error\[(\w+)\]", source))
    return codes | (by_hand - {PLACEHOLDER})


def _documented_codes() -> set[str]:
    """The codes in docs/console.md's tables of codes (header ``| code |``), and the
    ``error[code]`` its errors section names."""
    text = (Path(__file__).parents[1] / "docs" / "console.md").read_text()
    codes: set[str] = set()
    for table in re.findall(r"^\| code \|.*?(?=\n\n|\Z)", text, flags=re.M | re.S):
        cells = [row.split("|")[1] for row in table.splitlines()[2:]]
        codes |= set(re.findall(r"`(\w+)`", "".join(cells)))
    section = text[text.index("## Errors and exit codes") :]
    return codes | (set(re.findall(r"error\[(\w+)\]", section)) - {PLACEHOLDER})


def test_the_errors_table_lists_every_console_code_and_only_those() -> None:
    from deml_protocol.errors import ERROR_CODES

    console, documented = _console_codes(), _documented_codes()
    assert console - documented == set(), "printed by the console but not in docs/console.md"
    assert documented - console - set(ERROR_CODES) == set(), "documented but never printed"
    assert console & set(ERROR_CODES) == set(), "a console code must never mean a DApp code"


def test_printed_text_is_never_markup(tmp_path: Path) -> None:
    """A file name, a sponsor's recipe or a chain string prints as written: `[b]` stays."""
    home = tmp_path / "home[b]x[/b]"
    saved = CliRunner().invoke(
        app,
        ["config", "set", "--profile", "p", "--rpc-url", "http://[red]x"],
        env={"DEML_HOME": str(home), "COLUMNS": "300"},
    )
    assert saved.exit_code == 0, saved.output
    assert str(home / "config.json") in saved.stdout and "http://[red]x" in saved.stdout
