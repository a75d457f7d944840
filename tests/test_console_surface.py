"""What every ``deml`` command shows a new user without a chain: its ``--help`` in an
80-column terminal, and the error codes docs/console.md promises."""

from __future__ import annotations

import re
from collections.abc import Iterator
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
