"""Who signs: an account of the devnet's mnemonic, a private key from the environment, or an
encrypted JSON keystore. All key handling is eth-account's; nothing here signs by hand.

Chosen, first to last:

- ``--account N`` (or ``DEML_ACCOUNT=N``): account N of the devnet's test mnemonic (from
  ``devnet.json``, or ``DEML_MNEMONIC``), derived on the path anvil and the Cartesi CLI use;
- ``--keystore NAME`` (or ``DEML_KEYSTORE``): ``$DEML_HOME/keystore/NAME.json``, or a path to
  any V3 keystore file; the password from ``DEML_PASSWORD`` or asked for;
- ``DEML_PRIVATE_KEY``: a hex private key.

``deml account new|import|list`` manage the keystore (:func:`create`, :func:`import_key`,
:func:`list_keystore`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from eth_account import Account
from eth_account.signers.local import LocalAccount

from .sdk.node import HD_PATH, accounts_from_mnemonic
from .settings import Settings, deml_home

__all__ = [
    "AccountError",
    "KeystoreEntry",
    "create",
    "import_key",
    "keystore_dir",
    "list_keystore",
    "resolve_signer",
]

_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: How many of the mnemonic's accounts ``deml account list`` shows on a devnet.
DEVNET_ACCOUNTS = 10

PasswordPrompt = Callable[[str], str]


class AccountError(ValueError):
    """No usable account: none chosen, a bad index, a bad key, a wrong password."""

    code: ClassVar[str] = "account"


@dataclass(frozen=True)
class KeystoreEntry:
    name: str
    address: str
    path: Path


def keystore_dir() -> Path:
    return deml_home() / "keystore"


def _keystore_path(name: str) -> Path:
    if not _NAME.fullmatch(name):
        raise AccountError(f"bad keystore name {name!r}: use letters, digits, '_', '.', '-'")
    return keystore_dir() / f"{name}.json"


def _password(prompt: PasswordPrompt | None, text: str) -> str:
    from_env = os.environ.get("DEML_PASSWORD")
    if from_env is not None:
        return from_env
    if prompt is None:
        raise AccountError("a keystore needs a password: set DEML_PASSWORD or run interactively")
    return prompt(text)


def _save(name: str, account: LocalAccount, password: str) -> KeystoreEntry:
    if not password:
        raise AccountError("refusing an empty password: anyone who reads the file has the key")
    path = _keystore_path(name)
    if path.exists():
        raise AccountError(f"keystore {name!r} exists ({path}); choose another --name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    encrypted = Account.encrypt(account.key, password)
    # Created 0600 before the key is written: no moment where others could read it.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(encrypted, file)
    return KeystoreEntry(name, account.address, path)


def create(name: str, prompt: PasswordPrompt | None = None) -> KeystoreEntry:
    """A new random key, encrypted into the keystore as ``name``."""
    _keystore_path(name)  # a bad name fails before anything is asked
    return _save(name, Account.create(), _password(prompt, "password for the new keystore"))


def import_key(name: str, private_key: str, prompt: PasswordPrompt | None = None) -> KeystoreEntry:
    """An existing hex private key, encrypted into the keystore as ``name``."""
    account = _from_private_key(private_key)
    return _save(name, account, _password(prompt, "password for the keystore"))


def list_keystore() -> list[KeystoreEntry]:
    entries = []
    for path in sorted(keystore_dir().glob("*.json")):
        try:
            address = json.loads(path.read_text())["address"]
        except (ValueError, KeyError, TypeError):
            continue  # not a keystore file; leave it alone
        entries.append(KeystoreEntry(path.stem, _checksum(address), path))
    return entries


def _checksum(address: str) -> str:
    from web3 import Web3

    return str(Web3.to_checksum_address(address if address.startswith("0x") else "0x" + address))


def _from_private_key(private_key: str) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(private_key.strip())
    except (ValueError, TypeError) as exc:
        raise AccountError("not a private key: expected 32 bytes of hex (0x...)") from exc
    return account


def _from_keystore(name_or_path: str, prompt: PasswordPrompt | None) -> LocalAccount:
    path = Path(name_or_path)
    if not path.suffix == ".json":
        path = _keystore_path(name_or_path)
    if not path.exists():
        raise AccountError(f"no keystore {name_or_path!r} ({path}); see `deml account list`")
    try:
        encrypted = json.loads(path.read_text())
    except ValueError as exc:
        raise AccountError(f"{path} is not a JSON keystore") from exc
    if not isinstance(encrypted, dict) or "crypto" not in encrypted and "Crypto" not in encrypted:
        raise AccountError(f"{path} is not a V3 keystore (no 'crypto' object)")
    password = _password(prompt, f"password for {path.name}")
    try:
        key = Account.decrypt(encrypted, password)
    except ValueError as exc:
        raise AccountError(f"cannot decrypt {path}: wrong password?") from exc
    except (KeyError, TypeError) as exc:  # a field missing or of the wrong type
        raise AccountError(f"{path} is not a V3 keystore ({type(exc).__name__}: {exc})") from exc
    return _from_private_key(key.hex())


def _mnemonic(settings: Settings) -> str:
    mnemonic = settings.mnemonic or os.environ.get("DEML_MNEMONIC")
    if not mnemonic:
        raise AccountError(
            "--account N needs a devnet mnemonic (from devnet.json or DEML_MNEMONIC); on a real "
            "chain use --keystore NAME or DEML_PRIVATE_KEY"
        )
    return mnemonic


def devnet_accounts(settings: Settings, count: int = DEVNET_ACCOUNTS) -> list[LocalAccount]:
    return accounts_from_mnemonic(_mnemonic(settings), count)


def devnet_account(settings: Settings, index: int) -> LocalAccount:
    """Account ``index`` of the devnet mnemonic (derived alone: any index is quick)."""
    Account.enable_unaudited_hdwallet_features()  # eth-account's own BIP-32 derivation
    account: LocalAccount = Account.from_mnemonic(
        _mnemonic(settings), account_path=HD_PATH.format(index=index)
    )
    return account


def resolve_signer(
    settings: Settings,
    *,
    account_index: int | None = None,
    keystore: str | None = None,
    prompt: PasswordPrompt | None = None,
) -> LocalAccount | None:
    """The account to sign with, or None if none was chosen (fine for reading)."""
    if account_index is not None and keystore is not None:
        raise AccountError("choose one of --account and --keystore")
    if account_index is not None:
        if not 0 <= account_index < 2**31:  # BIP-32: above are hardened indexes
            raise AccountError(f"--account must be from 0 to 2^31 - 1, not {account_index}")
        return devnet_account(settings, account_index)
    if keystore is not None:
        return _from_keystore(keystore, prompt)
    private_key = os.environ.get("DEML_PRIVATE_KEY")
    if private_key:
        return _from_private_key(private_key)
    return None
