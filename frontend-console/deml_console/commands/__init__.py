"""The ``deml`` commands, one module per kind of user; importing this registers them all on
:data:`deml_console.cli.app`."""

from . import account, anyone, config, devnet, settle

__all__ = ["account", "anyone", "config", "devnet", "settle"]
