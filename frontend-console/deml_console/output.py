"""How a command shows its result: a Rich rendering for people, or ``--json`` for scripts.

A command builds plain data (dicts, lists, strings, ints: what ``--json`` prints) and a
function that renders it for a terminal; :meth:`Output.result` picks one. Progress and
narration (:meth:`Output.say`, :meth:`Output.progress`) go to stderr, so stdout carries only
the result and ``deml ... --json | jq`` always works.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

__all__ = ["Output", "jsonable", "table"]


def jsonable(value: Any) -> Any:
    """Decoded values (notice fields, ...) as ``--json`` prints them: integers as decimal
    strings (ABI integers overflow a JSON reader's doubles; the DApp's replies do the same),
    bytes as 0x hex, tuples as lists."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A Rich table with ``columns`` and ``rows`` (cells are shown with ``str``)."""
    shown = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        shown.add_column(column, overflow="fold")
    for row in rows:
        shown.add_row(*("" if cell is None else str(cell) for cell in row))
    return shown


@dataclass
class Output:
    json_mode: bool = False
    # Never markup: what is printed holds chain data, file names and the sponsor's text,
    # where `[b]` must stay `[b]`; styles are Text styles.
    stdout: Console = field(default_factory=lambda: Console(soft_wrap=True, markup=False))
    stderr: Console = field(
        default_factory=lambda: Console(stderr=True, soft_wrap=True, markup=False)
    )

    def result(self, data: Any, render: Callable[[Console], None] | None = None) -> None:
        """Print the command's result: ``data`` as JSON, or ``render(console)``, or ``data``."""
        if self.json_mode:
            print(json.dumps(data, indent=2, default=str))
        elif render is not None:
            render(self.stdout)
        else:
            self.stdout.print(data)

    def say(self, text: str) -> None:
        """Narration for people (stderr; silent with ``--json``)."""
        if not self.json_mode:
            self.stderr.print(text, highlight=False)

    def warn(self, text: str) -> None:
        """A warning (stderr, ``warning: text``), printed even with ``--json``."""
        self.stderr.print(Text.assemble(("warning:", "yellow"), f" {text}"), highlight=False)

    @contextmanager
    def status(self, text: str) -> Iterator[Callable[[str], None]]:
        """A spinner and ``text`` on stderr (hidden with ``--json`` or when not a terminal);
        yields a function that changes the text."""
        if self.json_mode or not self.stderr.is_terminal:
            yield lambda _: None
            return
        with self.stderr.status(text) as shown:
            yield lambda new: shown.update(new)

    @contextmanager
    def progress(self, *, bytes_: bool = False) -> Iterator[Progress]:
        """A Rich progress display on stderr (hidden with ``--json`` or when not a terminal)."""
        columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn()]
        columns += [DownloadColumn()] if bytes_ else [TextColumn("{task.completed}/{task.total}")]
        columns.append(TimeRemainingColumn())
        hidden = self.json_mode or not self.stderr.is_terminal  # a log gets no bar remnants
        with Progress(*columns, console=self.stderr, disable=hidden, transient=True) as shown:
            yield shown
