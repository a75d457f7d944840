"""``deml config show|set``: where the chain, the node and the application are."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from ..cli import SETUP, app, current, reporting_errors
from ..output import table
from ..settings import DEFAULT_PROFILE, ConfigError, save_profile

config_app = typer.Typer(help="Settings: show them, save a profile for a real deployment.")
app.add_typer(config_app, name="config", rich_help_panel=SETUP)


@config_app.command("show")
def show() -> None:
    """Show the settings in use and where each comes from."""
    with reporting_errors():
        public = current().settings().public()
        if public.get("mnemonic"):
            public["mnemonic"] = "(the devnet's test mnemonic)"

        def render(console: Console) -> None:
            sources = public["sources"]
            rows = [(k, v, sources.get(k, "")) for k, v in public.items() if k != "sources"]
            console.print(table(None, ("setting", "value", "from"), rows))

        current().output.result(public, render)


@config_app.command("set")
def set_(
    chain_id: Annotated[
        int | None, typer.Option(help="The chain id the profile must be on (checked).")
    ] = None,
    reward_token: Annotated[str | None, typer.Option(help="A default ERC-20 for rewards.")] = None,
    epoch_length: Annotated[int | None, typer.Option(help="Blocks per epoch.")] = None,
) -> None:
    """Save where the chain, the node and the app are into a profile.

    Saves `--rpc-url`, `--node-url`, `--app` and the options below into `--profile`
    (default: `default`), e.g.
    `deml config set --profile sepolia --rpc-url URL --node-url URL --app 0x...`.
    """
    with reporting_errors():
        given = current()
        values = {
            "rpc_url": given.rpc_url,
            "node_url": given.node_url,
            "app": given.app,
            "chain_id": chain_id,
            "reward_token": reward_token,
            "epoch_length": epoch_length,
        }
        if all(value is None for value in values.values()):
            raise ConfigError("nothing to save: give --rpc-url, --node-url, --app or --chain-id")
        name = given.profile or DEFAULT_PROFILE
        path = save_profile(name, values)
        saved = {k: v for k, v in values.items() if v is not None}
        given.output.result(
            {"profile": name, "path": str(path), "saved": saved},
            lambda console: console.print(f"profile {name} saved to {path}: {saved}"),
        )
