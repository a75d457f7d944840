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
    """Every code the console itself can print: its error classes' codes (in the modules the
    command imports), and the codes ``cli.py`` prints by hand."""
    import sys

    import deml_console.cli as cli

    codes = {
        str(value.__dict__["code"])
        for name, module in list(sys.modules.items())
        if name.startswith("deml_console.")
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == name
        and isinstance(value.__dict__.get("code"), str)
    }
    source = Path(cli.__file__).read_text()
    return (
        codes
        | set(re.findall(r'fail\("(\w+)"', source))
        | set(re.findall(r"error\[(\w+)\]", source))
    )


def _documented_codes() -> set[str]:
    """The codes in docs/console.md's tables of codes (header ``| code |``), and the
    ``error[code]`` its errors section names."""
    text = (Path(__file__).parents[1] / "docs" / "console.md").read_text()
    codes: set[str] = set()
    for table in re.findall(r"^\| code \|.*?(?=\n\n|\Z)", text, flags=re.M | re.S):
        cells = [row.split("|")[1] for row in table.splitlines()[2:]]
        codes |= set(re.findall(r"`(\w+)`", "".join(cells)))
    section = text[text.index("## Errors and exit codes") :]
    return codes | set(re.findall(r"error\[(\w+)\]", section))


def test_the_errors_table_lists_every_console_code_and_only_those() -> None:
    from deml_protocol.errors import ERROR_CODES

    console, documented = _console_codes(), _documented_codes()
    assert console - documented == set(), "printed by the console but not in docs/console.md"
    assert documented - console - set(ERROR_CODES) == set(), "documented but never printed"
    assert console & set(ERROR_CODES) == set(), "a console code must never mean a DApp code"
