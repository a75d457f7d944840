"""The ``deml`` commands, one module per kind of user; importing this registers them all on
:data:`deml_console.cli.app`."""

from . import account, anyone, config, data_owner, devnet, settle, sponsor

__all__ = ["account", "anyone", "config", "data_owner", "devnet", "settle", "sponsor"]
