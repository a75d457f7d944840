"""The ``deml`` command line: the app, its global options, and how errors are reported.

Every command body runs inside :func:`reporting_errors`, so a user's mistake never shows a
traceback: any exception that carries a string ``code`` class attribute (``CidError``,
``StoreError``, ``CarError``, the DApp's ``Rejected``, ``ConfigError``, ``AccountError``,
``Unreachable``, ...) prints ``error[code]: message`` on stderr and exits 1; a missing or
unreadable file does the same with an OS-derived code; a chain or node that does not answer
is ``error[unreachable]``. Command-line mistakes (unknown option, bad value, missing
argument) print ``error[usage]: ...`` and exit 2; Ctrl-C exits 130. Anything else is a bug
and keeps its traceback.

The global options (:data:`GLOBAL_OPTIONS`: where the node is, who signs, ``--json``) may be
written before or after the command (``deml jobs --json`` = ``deml --json jobs``): they are
moved in front of it before parsing. A command reads them with :func:`current`.

Commands live in ``deml_console/commands/`` (one module per kind of user); each module
registers its commands on :data:`app`. Keep a command's body a few lines that call the SDK
inside ``with reporting_errors():`` and print through :class:`~deml_console.output.Output`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import requests
import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from .accounts import resolve_signer
from .output import Output
from .session import Session
from .settings import Settings, load_settings

__all__ = ["GLOBAL_OPTIONS", "Globals", "app", "current", "fail", "reporting_errors"]

#: The panels of `deml --help`, one per kind of user, in this order.
SPONSORS, DATA_OWNERS, ANYONE, SETUP = "Sponsors", "Data owners", "Anyone", "Setup"
PANELS = (SPONSORS, DATA_OWNERS, ANYONE, SETUP)

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Options of the whole console, accepted anywhere on the line; True = takes a value.
GLOBAL_OPTIONS: dict[str, bool] = {
    "--json": False,
    "--rpc-url": True,
    "--node-url": True,
    "--app": True,
    "--profile": True,
    "--devnet": True,
    "--account": True,
    "--keystore": True,
}


def globals_first(args: Sequence[str]) -> list[str]:
    """``args`` with every global option (and its value) moved to the front, so it parses
    wherever the user wrote it. Stops at ``--``: what follows is never an option."""
    front: list[str] = []
    rest: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--":
            rest.append(arg)
            rest.extend(items)
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            front.append(arg)
            if GLOBAL_OPTIONS[name] and "=" not in arg:
                value = next(items, None)
                if value is not None:
                    front.append(value)
        else:
            rest.append(arg)
    return front + rest


class _DemlGroup(TyperGroup):
    """Typer's group, with usage errors printed as ``error[usage]`` instead of a panel, and
    its commands listed by panel (:data:`PANELS`) rather than by import order."""

    def list_commands(self, ctx: Any) -> list[str]:
        def panel(name: str) -> int:
            shown = getattr(self.commands[name], "rich_help_panel", None)
            return PANELS.index(shown) if shown in PANELS else len(PANELS)

        return sorted(super().list_commands(ctx), key=panel)

    def main(  # type: ignore[override]  # click's signature, positional by design
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        args = globals_first(sys.argv[1:] if args is None else args)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
            code = result if isinstance(result, int) else 0
        except TyperException as exc:  # typer's click exceptions all derive from it
            code = _report_usage(exc)
        except (typer.Abort, KeyboardInterrupt):
            typer.echo("error[interrupted]: stopped", err=True)
            code = EXIT_INTERRUPTED
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
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,  # never print locals (keys) in a traceback
)


@dataclass
class Globals:
    """The global options of one ``deml`` run; settings and the session are built lazily (a
    command that needs neither, like ``deml cid``, never reads a config file)."""

    json_mode: bool = False
    rpc_url: str | None = None
    node_url: str | None = None
    app: str | None = None
    profile: str | None = None
    devnet: Path | None = None
    account: int | None = None
    keystore: str | None = None
    output: Output = field(default_factory=Output)
    _session: Session | None = None

    def settings(self) -> Settings:
        return load_settings(
            rpc_url=self.rpc_url,
            node_url=self.node_url,
            app=self.app,
            profile=self.profile,
            devnet=self.devnet,
        )

    def session(self) -> Session:
        """Settings, signer (if one was chosen) and a lazily connected transport."""
        if self._session is None:
            settings = self.settings()
            signer = resolve_signer(
                settings,
                account_index=self.account,
                keystore=self.keystore,
                prompt=lambda text: str(typer.prompt(text, hide_input=True)),
            )
            self._session = Session(settings, signer)
        return self._session


_CURRENT: ContextVar[Globals | None] = ContextVar("deml_globals", default=None)


def current() -> Globals:
    """The running command's global options (set by the app's callback for each run)."""
    return _CURRENT.get() or Globals()


@app.callback()
def main(
    json_mode: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (for scripts).")
    ] = False,
    rpc_url: Annotated[
        str | None, typer.Option(envvar="DEML_RPC_URL", help="The chain's JSON-RPC URL.")
    ] = None,
    node_url: Annotated[
        str | None,
        typer.Option(envvar="DEML_NODE_URL", help="The Cartesi node (inspect and JSON-RPC)."),
    ] = None,
    app_address: Annotated[
        str | None,
        typer.Option("--app", envvar="DEML_APP", help="The Application contract's address."),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(envvar="DEML_PROFILE", help="A saved profile (`deml config set`)."),
    ] = None,
    devnet: Annotated[
        Path | None,
        typer.Option(envvar="DEML_DEVNET", help="A devnet.json (default: .devnet/devnet.json)."),
    ] = None,
    account: Annotated[
        int | None,
        typer.Option(envvar="DEML_ACCOUNT", help="Sign as account N of the devnet mnemonic."),
    ] = None,
    keystore: Annotated[
        str | None,
        typer.Option(
            envvar="DEML_KEYSTORE",
            help="Sign with a keystore: a name in `deml account list`, or a file.",
        ),
    ] = None,
) -> None:
    """Post and join federated-training jobs on a Cartesi rollup (DeML).

    The options below may also follow the command (`deml jobs --json`). Without `--rpc-url`,
    `--node-url` and `--app`, the devnet's `.devnet/devnet.json` (written by
    `python -m devnet up`) or a saved profile (`deml config set`) says where the node is.

    Exit codes: 0 done; 1 an error, printed as `error[code]: what to do`; 2 a usage
    mistake; 130 interrupted. Every command is in docs/console.md.
    """
    _CURRENT.set(
        Globals(
            json_mode=json_mode,
            rpc_url=rpc_url,
            node_url=node_url,
            app=app_address,
            profile=profile,
            devnet=devnet,
            account=account,
            keystore=keystore,
            output=Output(json_mode=json_mode),
        )
    )


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
    except requests.RequestException as exc:  # the chain or the node, mid-command
        where = exc.request.url if exc.request is not None else "the node"
        fail("unreachable", f"no answer from {where} ({type(exc).__name__}); is it running?")
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


from . import commands  # noqa: E402, F401  (registers every command on `app`)
