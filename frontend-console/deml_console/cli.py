"""The ``deml`` command line: a thin layer that parses arguments and reports errors.

Every command body runs inside :func:`reporting_errors`, so a user's mistake never shows a
traceback: any exception that carries a string ``code`` class attribute (``CidError``,
``StoreError``, ``CarError``, and the DApp's ``Rejected``) prints ``error[code]: message``
on stderr and exits 1; a missing or unreadable file does the same with an OS-derived code.
Command-line mistakes (unknown option, bad value, missing argument) print
``error[usage]: ...`` and exit 2. Anything else is a bug and keeps its traceback.

To add a command, decorate a function with ``@app.command()`` here (or in a module imported
here), keep its body a few lines that call library code inside ``with reporting_errors():``
and put its rendering in ``views.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from deml_protocol.cid import cid_of_file

__all__ = ["app", "fail", "reporting_errors"]

EXIT_FAILURE = 1
EXIT_USAGE = 2


class _DemlGroup(TyperGroup):
    """Typer's group, with usage errors printed as ``error[usage]`` instead of a panel."""

    def main(  # type: ignore[override]  # click's signature, positional by design
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
            code = result if isinstance(result, int) else 0
        except TyperException as exc:  # typer's click exceptions all derive from it
            code = _report_usage(exc)
        except typer.Abort:
            typer.echo("error[aborted]: aborted", err=True)
            code = EXIT_FAILURE
        if standalone_mode:
            sys.exit(code)
        return code


def _report_usage(exc: TyperException) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # bare `deml`: show the help
        if help_text := exc.format_message():
            typer.echo(help_text, err=True)
        return EXIT_USAGE
    typer.echo(f"error[usage]: {exc.format_message()}", err=True)
    if ctx is not None:
        typer.echo(f"{ctx.get_usage()}\nTry '{ctx.command_path} --help' for help.", err=True)
    return int(getattr(exc, "exit_code", EXIT_USAGE))


app = typer.Typer(
    name="deml",
    cls=_DemlGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # never print locals (keys) in a traceback
)


@app.callback()
def main() -> None:
    """DeML console: post and join federated-training jobs on a Cartesi rollup."""


def fail(code: str, message: str) -> NoReturn:
    """Print ``error[code]: message`` on stderr and exit 1."""
    typer.echo(f"error[{code}]: {message}", err=True)
    raise typer.Exit(EXIT_FAILURE)


def _os_error(exc: OSError) -> NoReturn:
    where = exc.filename if exc.filename is not None else "file"
    if isinstance(exc, FileNotFoundError):
        fail("file_not_found", f"no such file: {where}")
    if isinstance(exc, IsADirectoryError):
        fail("is_a_directory", f"{where} is a directory; give a file")
    if isinstance(exc, PermissionError):
        fail("permission_denied", f"cannot read {where}: permission denied")
    fail("io_error", f"{where}: {exc.strerror or exc}")


@contextmanager
def reporting_errors() -> Iterator[None]:
    """Turn coded library errors and file errors into ``error[code]: message``, exit 1."""
    try:
        yield
    except OSError as exc:
        code = getattr(type(exc), "code", None)
        if isinstance(code, str):  # e.g. StoreUnavailable is also a ConnectionError
            fail(code, str(exc))
        _os_error(exc)
    except Exception as exc:
        code = getattr(type(exc), "code", None)
        if not isinstance(code, str):
            raise
        fail(code, str(exc))


@app.command("cid")
def cid_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="File to hash.", show_default=False)],
    cid_version: Annotated[
        int,
        typer.Option(
            "--cid-version",
            min=0,
            max=1,
            help="1: as `ipfs add --cid-version=1` (bafy..., default); 0: as `ipfs add` (Qm...).",
        ),
    ] = 1,
) -> None:
    """Print the CID `ipfs add` would give FILE, without uploading it anywhere."""
    with reporting_errors():
        typer.echo(cid_of_file(file, version=cid_version))
