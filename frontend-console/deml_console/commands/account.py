"""``deml account new|import|list``: keys in the encrypted keystore (``$DEML_HOME/keystore``)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console

from .. import accounts
from ..cli import SETUP, app, current, reporting_errors
from ..output import table

account_app = typer.Typer(help="Keys: create, import, list (encrypted JSON keystores).")
app.add_typer(account_app, name="account", rich_help_panel=SETUP)

Name = Annotated[str, typer.Option("--name", help="The keystore's name (its file name).")]


def _ask_new_password(text: str) -> str:
    return str(typer.prompt(text, hide_input=True, confirmation_prompt=True))


@account_app.command("new")
def new(name: Name = "default") -> None:
    """Create a random key and save it encrypted in the keystore.

    The password is asked for, or read from DEML_PASSWORD.
    """
    with reporting_errors():
        entry = accounts.create(name, _ask_new_password)
        out = current().output
        out.result(
            {"name": entry.name, "address": entry.address, "path": str(entry.path)},
            lambda console: console.print(f"{entry.name}: {entry.address}\nsaved to {entry.path}"),
        )


@account_app.command("import")
def import_(name: Name = "default") -> None:
    """Save an existing private key encrypted in the keystore.

    The key comes from DEML_PRIVATE_KEY or is asked for (hidden); the password from
    DEML_PASSWORD, or asked for.
    """
    with reporting_errors():
        key = os.environ.get("DEML_PRIVATE_KEY") or str(
            typer.prompt("private key (hex)", hide_input=True)
        )
        entry = accounts.import_key(name, key, _ask_new_password)
        current().output.result(
            {"name": entry.name, "address": entry.address, "path": str(entry.path)},
            lambda console: console.print(f"{entry.name}: {entry.address}\nsaved to {entry.path}"),
        )


@account_app.command("list")
def list_() -> None:
    """List the keystore's accounts and the devnet's (`--account N`)."""
    with reporting_errors():
        rows = [
            {"kind": "keystore", "name": e.name, "address": e.address}
            for e in accounts.list_keystore()
        ]
        settings = current().settings()
        if settings.mnemonic:
            devnet = accounts.devnet_accounts(settings)
            rows += [
                {"kind": "devnet", "name": f"--account {i}", "address": a.address}
                for i, a in enumerate(devnet)
            ]

        def render(console: Console) -> None:
            if not rows:
                console.print("no accounts: `deml account new`, or start a devnet")
                return
            cells = [(r["kind"], r["name"], r["address"]) for r in rows]
            console.print(table(None, ("kind", "use as", "address"), cells))

        current().output.result(rows, render)
