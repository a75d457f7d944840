"""The console's settings, accounts and connection checks (``deml config``, ``deml account``,
global options anywhere on the line, chain id checks against a real devnet)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from deml_console.accounts import AccountError, resolve_signer
from deml_console.cli import app, globals_first
from deml_console.session import NeedsAccount, Session, Unreachable, WrongChain
from deml_console.settings import ConfigError, Settings, load_settings
from devnet.anvil import DEFAULT_MNEMONIC, free_port
from devnet.stack import Devnet, DevnetConfig

#: Account 1 of anvil's public test mnemonic.
ACCOUNT_1 = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $DEML_HOME, an empty working directory, no DEML_* settings from outside."""
    for name in list(os.environ):
        if name.startswith("DEML_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DEML_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def devnet_json(path: Path, **overrides: object) -> Path:
    info = {
        "rpc_url": "http://127.0.0.1:1",
        "node_url": "http://127.0.0.1:2/",
        "application": "0x" + "ab" * 20,
        "chain_id": 31337,
        "mnemonic": DEFAULT_MNEMONIC,
    } | overrides
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info))
    return path


def test_global_options_parse_before_or_after_the_command() -> None:
    assert globals_first(["jobs", "--json", "--account", "3"]) == [
        "--json",
        "--account",
        "3",
        "jobs",
    ]
    assert globals_first(["job", "show", "7", "--app=0xab"]) == ["--app=0xab", "job", "show", "7"]
    # after `--` nothing is an option, even if it looks like one
    assert globals_first(["send", "--", "--json"]) == ["send", "--", "--json"]


def test_flags_override_profile_and_profile_overrides_devnet_json(home: Path) -> None:
    devnet_json(Path(".devnet/devnet.json"))
    from_devnet = load_settings()
    assert (from_devnet.rpc_url, from_devnet.node_url) == (
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
    )
    assert from_devnet.sources["app"] == str(Path(".devnet/devnet.json"))

    runner = CliRunner()
    saved = runner.invoke(
        app, ["config", "set", "--profile", "prod", "--rpc-url", "http://r", "--chain-id", "5"]
    )
    assert saved.exit_code == 0, saved.output
    prod = load_settings(profile="prod", node_url="http://n")
    assert (prod.rpc_url, prod.node_url, prod.chain_id) == ("http://r", "http://n", 5)
    assert prod.sources == {
        "rpc_url": "profile prod",
        "chain_id": "profile prod",
        "node_url": "command line",
    }
    assert prod.app is None
    with pytest.raises(ConfigError, match="--app"):  # says what is missing and how to set it
        prod.require()
    with pytest.raises(ConfigError, match="no profile 'staging'"):
        load_settings(profile="staging")


def test_config_show_as_json(runner: CliRunner) -> None:
    devnet_json(Path("elsewhere/devnet.json"), application="0x" + "cd" * 20)
    shown = runner.invoke(app, ["config", "show", "--devnet", "elsewhere/devnet.json", "--json"])
    assert shown.exit_code == 0, shown.output
    reply = json.loads(shown.stdout)
    assert reply["app"] == "0x" + "cd" * 20 and reply["chain_id"] == 31337
    assert reply["mnemonic"] == "(the devnet's test mnemonic)"  # never printed


def test_no_configuration_is_an_error_that_says_what_to_do(runner: CliRunner) -> None:
    result = runner.invoke(app, ["config", "show", "--devnet", "missing.json"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error[config]: no such devnet file: missing.json")
    assert "Traceback" not in result.output


def test_accounts_from_the_mnemonic_a_private_key_or_the_keystore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = Settings(mnemonic=DEFAULT_MNEMONIC)
    signer = resolve_signer(settings, account_index=1)
    assert signer is not None and signer.address == ACCOUNT_1
    assert resolve_signer(Settings()) is None  # nobody chosen: fine for reading
    with pytest.raises(AccountError, match="needs a devnet mnemonic"):
        resolve_signer(Settings(), account_index=1)

    key = Account.create()
    monkeypatch.setenv("DEML_PRIVATE_KEY", key.key.hex())
    from_env = resolve_signer(Settings())
    assert from_env is not None and from_env.address == key.address
    monkeypatch.setenv("DEML_PRIVATE_KEY", "0x1234")
    with pytest.raises(AccountError, match="not a private key"):
        resolve_signer(Settings())


def test_keystore_new_import_list_and_use(runner: CliRunner, home: Path) -> None:
    env = {"DEML_PASSWORD": "correct horse"}
    created = runner.invoke(app, ["account", "new", "--name", "alice", "--json"], env=env)
    assert created.exit_code == 0, created.output
    alice = json.loads(created.stdout)
    path = Path(alice["path"])
    assert path.parent == home / "keystore" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert json.loads(path.read_text())["version"] == 3  # a V3 keystore (decrypted below)

    key = Account.create()
    imported = runner.invoke(
        app,
        ["account", "import", "--name", "bob"],
        env=env | {"DEML_PRIVATE_KEY": key.key.hex()},
    )
    assert imported.exit_code == 0, imported.output
    assert key.address in imported.stdout
    again = runner.invoke(app, ["account", "new", "--name", "bob"], env=env)
    assert again.exit_code == 1 and again.stderr.startswith("error[account]: keystore 'bob' exists")

    listed = runner.invoke(app, ["--json", "account", "list"])
    assert [(a["name"], a["address"]) for a in json.loads(listed.stdout)] == [
        ("alice", alice["address"]),
        ("bob", key.address),
    ]
    signer = resolve_signer(Settings(), keystore="bob", prompt=lambda _: "correct horse")
    assert signer is not None and signer.address == key.address
    with pytest.raises(AccountError, match="wrong password"):
        resolve_signer(Settings(), keystore="bob", prompt=lambda _: "wrong")


def test_an_unreachable_chain_names_the_url_and_the_fix() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    session = Session(Settings(rpc_url=url, node_url=url, app="0x" + "ab" * 20))
    with pytest.raises(Unreachable, match=f"cannot reach the chain at {url}.*devnet up"):
        session.client()


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    with Devnet(DevnetConfig(state_dir=tmp_path_factory.mktemp("cfg"), port=0)) as stack:
        yield stack


@pytest.mark.devnet
def test_the_chain_id_is_checked_before_anything_is_sent(devnet: Devnet) -> None:
    info = devnet.info
    right = Settings(rpc_url=info["rpc_url"], node_url=info["node_url"], app=info["application"])
    assert Session(right).client().jobs() == []  # reading needs no account
    with pytest.raises(NeedsAccount, match="--account N"):  # sending does
        Session(right).client(signing=True)
    with pytest.raises(WrongChain, match="chain id 31337.*the settings expect 1"):
        Session(Settings(**{**right.public(), "chain_id": 1, "sources": {}})).client()
    with pytest.raises(WrongChain, match="does not run application"):
        Session(Settings(**{**right.public(), "app": "0x" + "ab" * 20, "sources": {}})).client()


@pytest.mark.devnet
def test_commands_read_devnet_json(devnet: Devnet, runner: CliRunner) -> None:
    devnet_file = str(devnet.config.state_dir / "devnet.json")
    shown = runner.invoke(app, ["config", "show", "--json", "--devnet", devnet_file])
    assert json.loads(shown.stdout)["app"] == devnet.info["application"]
    listed = runner.invoke(app, ["account", "list", "--json", "--devnet", devnet_file])
    devnet_accounts = [a for a in json.loads(listed.stdout) if a["kind"] == "devnet"]
    assert devnet_accounts[1] == {"kind": "devnet", "name": "--account 1", "address": ACCOUNT_1}


def test_account_and_settings_mistakes_are_errors_not_tracebacks(
    runner: CliRunner, tmp_path: Path, home: Path
) -> None:
    big = resolve_signer(Settings(mnemonic=DEFAULT_MNEMONIC), account_index=2**31 - 1)
    assert big is not None  # derived alone, at once (not every account below it)
    with pytest.raises(AccountError, match="from 0 to 2"):
        resolve_signer(Settings(mnemonic=DEFAULT_MNEMONIC), account_index=2**31)
    for text in ("{}", "[1]", '{"crypto": 5}'):
        broken = tmp_path / "broken.json"
        broken.write_text(text)
        with pytest.raises(AccountError, match="not a V3 keystore"):
            resolve_signer(Settings(), keystore=str(broken), prompt=lambda _: "pw")
    empty = runner.invoke(app, ["account", "new", "--name", "x"], env={"DEML_PASSWORD": ""})
    assert empty.exit_code == 1 and "error[account]: refusing an empty password" in empty.stderr
    bad_app = runner.invoke(
        app, ["jobs", "--rpc-url", "http://a", "--node-url", "http://b", "--app", "nothex"]
    )
    assert bad_app.exit_code == 1, bad_app.output
    assert bad_app.stderr.startswith("error[config]: --app 'nothex' is not an address")
    saved = runner.invoke(app, ["config", "set", "--rpc-url", "http://r"])
    assert saved.exit_code == 0
    assert oct((home / "config.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.devnet
def test_an_account_without_ether_for_gas_gets_tx_failed(devnet: Devnet, runner: CliRunner) -> None:
    devnet_file = str(devnet.config.state_dir / "devnet.json")
    broke = Account.create()
    sent = runner.invoke(
        app,
        ["send", "0xdeadbeef", "--devnet", devnet_file],
        env={"DEML_PRIVATE_KEY": broke.key.hex()},
    )
    assert sent.exit_code == 1, sent.output
    assert sent.stderr.startswith("error[tx_failed]: the chain refused a transaction from")
    assert "Traceback" not in sent.output
