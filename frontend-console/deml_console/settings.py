"""Where the console finds the chain, the node and the application.

Each of ``rpc_url``, ``node_url``, ``app`` and ``chain_id`` comes from, first to last:

1. the command line (``--rpc-url``, ``--node-url``, ``--app``) or its environment variable
   (``DEML_RPC_URL``, ``DEML_NODE_URL``, ``DEML_APP``);
2. a named profile (``--profile NAME`` or ``DEML_PROFILE``) from ``$DEML_HOME/config.json``,
   written by ``deml config set``;
3. otherwise the devnet's ``devnet.json`` (``--devnet PATH``, ``DEML_DEVNET``, or
   ``.devnet/devnet.json`` in the current directory, where ``python -m devnet up`` writes it);
4. otherwise the profile named ``default``, if there is one.

So after ``python -m devnet up`` every command just works from the same directory, and a real
deployment is one ``deml config set`` away. ``$DEML_HOME`` defaults to ``~/.deml``; it also
holds the keystore (``deml_console.accounts``) and each job's local secrets
(``deml_console.workspace``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

__all__ = [
    "ConfigError",
    "Settings",
    "deml_home",
    "load_settings",
    "read_profiles",
    "save_profile",
]

#: Where ``python -m devnet up`` writes its description, relative to where it was started.
DEFAULT_DEVNET_JSON = Path(".devnet") / "devnet.json"
DEFAULT_PROFILE = "default"
_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")
_KEYS = ("rpc_url", "node_url", "app", "chain_id", "mnemonic", "reward_token", "epoch_length")


class ConfigError(ValueError):
    """The console does not know where the chain, the node or the application is."""

    code: ClassVar[str] = "config"


@dataclass(frozen=True)
class Settings:
    rpc_url: str | None = None  # the chain's JSON-RPC
    node_url: str | None = None  # the Cartesi node: POST /inspect/<app>, POST /rpc
    app: str | None = None  # the Application contract
    chain_id: int | None = None  # expected; checked against the chain and the node
    mnemonic: str | None = None  # a devnet's test mnemonic, for --account N
    reward_token: str | None = None  # the devnet's ERC-20, a default for `--token devnet`
    epoch_length: int | None = None  # blocks per epoch, for "when can I execute"
    sources: dict[str, str] = field(default_factory=dict, compare=False)  # key -> origin

    def require(self) -> tuple[str, str, str]:
        """``(rpc_url, node_url, app)``, or a ConfigError saying how to set what is missing."""
        missing = [
            name
            for name, value in (
                ("--rpc-url", self.rpc_url),
                ("--node-url", self.node_url),
                ("--app", self.app),
            )
            if not value
        ]
        if missing:
            raise ConfigError(
                f"no {', '.join(missing)} configured. Start a devnet here "
                "(`python -m devnet up`), pass the options (or DEML_RPC_URL, DEML_NODE_URL, "
                "DEML_APP), or save a profile with `deml config set`"
            )
        assert self.rpc_url and self.node_url and self.app
        if not _ADDRESS.fullmatch(self.app):
            raise ConfigError(
                f"--app {self.app!r} is not an address (0x and 40 hex digits; "
                f"from {self.sources.get('app', 'the settings')})"
            )
        return self.rpc_url, self.node_url, self.app

    def public(self) -> dict[str, Any]:
        """What ``deml config show`` prints: every setting and where it came from."""
        shown = {key: value for key, value in asdict(self).items() if key != "sources"}
        return shown | {"sources": dict(self.sources)}


def deml_home() -> Path:
    return Path(os.environ.get("DEML_HOME") or Path.home() / ".deml")


def _config_path() -> Path:
    return deml_home() / "config.json"


def read_profiles() -> dict[str, dict[str, Any]]:
    path = _config_path()
    if not path.exists():
        return {}
    try:
        profiles = json.loads(path.read_text())["profiles"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a deml config file ({exc}); fix or delete it") from exc
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be an object; fix or delete it")
    return profiles


def save_profile(name: str, values: dict[str, Any]) -> Path:
    """Merge ``values`` (keys of :class:`Settings`) into profile ``name``; the file's path."""
    unknown = set(values) - set(_KEYS)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    profiles = read_profiles()
    profiles[name] = profiles.get(name, {}) | {k: v for k, v in values.items() if v is not None}
    path = _config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # 0600 like every file under $DEML_HOME: a profile may name private endpoints (API keys
    # in RPC URLs are common).
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(json.dumps({"profiles": profiles}, indent=2, sort_keys=True) + "\n")
    path.chmod(0o600)  # a file written before this version
    return path


def _from_devnet(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); restart the devnet") from exc
    return {
        "rpc_url": info.get("rpc_url"),
        "node_url": info.get("node_url"),
        "app": info.get("application"),
        "chain_id": info.get("chain_id"),
        "mnemonic": info.get("mnemonic"),
        "reward_token": info.get("reward_token"),
        "epoch_length": info.get("epoch_length"),
    }


def load_settings(
    *,
    rpc_url: str | None = None,
    node_url: str | None = None,
    app: str | None = None,
    profile: str | None = None,
    devnet: Path | None = None,
) -> Settings:
    """Resolve the settings as the module docstring says (flags override everything)."""
    base: dict[str, Any] = {}
    origin = ""
    profiles = read_profiles()
    devnet_json = devnet or Path(os.environ.get("DEML_DEVNET") or DEFAULT_DEVNET_JSON)
    if profile is not None:
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigError(
                f"no profile {profile!r} (known: {known}); create it with "
                f"`deml config set --profile {profile} --rpc-url ... --node-url ... --app ...`"
            )
        base, origin = profiles[profile], f"profile {profile}"
    elif devnet_json.exists():
        base, origin = _from_devnet(devnet_json), str(devnet_json)
    elif devnet is not None:
        raise ConfigError(f"no such devnet file: {devnet}")
    elif DEFAULT_PROFILE in profiles:
        base, origin = profiles[DEFAULT_PROFILE], f"profile {DEFAULT_PROFILE}"
    values = {key: base.get(key) for key in _KEYS}
    sources = {key: origin for key, value in values.items() if value is not None}
    for key, value in (("rpc_url", rpc_url), ("node_url", node_url), ("app", app)):
        if value:
            values[key], sources[key] = value, "command line"
    node = values["node_url"]
    return Settings(
        rpc_url=values["rpc_url"],
        node_url=None if not node else str(node).rstrip("/"),
        app=values["app"],
        chain_id=None if values["chain_id"] is None else int(values["chain_id"]),
        mnemonic=values["mnemonic"],
        reward_token=values["reward_token"],
        epoch_length=None if values["epoch_length"] is None else int(values["epoch_length"]),
        sources=sources,
    )
