"""Compile the Solidity we own (``contracts/``) with solc-js, reproducibly, and deploy it.

solc comes from the npm ``solc`` package pinned in package.json, driven through Node with
a standard-JSON input whose settings are all pinned here, so the bytecode depends only on
the source: anyone can rebuild it and get the same bytes. Results are cached under
``.devnet/solc/`` (git-ignored), keyed by a hash of the whole compiler input and the
compiler version, so a changed source or setting can never reuse a stale artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from eth_abi.abi import encode

from .anvil import REPO_ROOT
from .chain import Chain, ChainError

__all__ = [
    "EVM_VERSION",
    "OPTIMIZER_RUNS",
    "REWARD_TOKEN_NAME",
    "REWARD_TOKEN_SYMBOL",
    "CompileError",
    "CompiledContract",
    "compile_contract",
    "deploy_reward_token",
    "reward_token",
    "solc_version",
]

SOLC_PACKAGE: Final = REPO_ROOT / "node_modules" / "solc"
CACHE_DIR: Final = REPO_ROOT / ".devnet" / "solc"
#: The fork @cartesi/rollups 2.2.0 is built for; anvil 1.7.1 runs a later one by default.
EVM_VERSION: Final = "prague"
OPTIMIZER_RUNS: Final = 200
REWARD_TOKEN_SOURCE: Final = REPO_ROOT / "contracts" / "RewardToken.sol"
REWARD_TOKEN_NAME: Final = "DeML Reward Token"
REWARD_TOKEN_SYMBOL: Final = "DMLR"
_COMPILE_TIMEOUT_S: Final = 300.0
# Reads the standard-JSON input on stdin, writes solc's JSON output on stdout.
_NODE_SCRIPT: Final = (
    "const solc = require(process.argv[1]); let input = '';"
    "process.stdin.setEncoding('utf8');"
    "process.stdin.on('data', (chunk) => { input += chunk; });"
    "process.stdin.on('end', () => { process.stdout.write(solc.compile(input)); });"
)


class CompileError(RuntimeError):
    """solc-js is missing or rejected the source; the message carries solc's diagnostics."""


@dataclass(frozen=True, slots=True)
class CompiledContract:
    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes
    deployed_bytecode: bytes
    solc_version: str


def solc_version(package: Path = SOLC_PACKAGE) -> str:
    manifest = package / "package.json"
    if not manifest.is_file():
        raise CompileError(f"solc-js not found at {package}: run `make setup` (npm install)")
    version: str = json.loads(manifest.read_text())["version"]
    return version


def _standard_input(unit_name: str, source: str) -> dict[str, Any]:
    """Every setting that changes the bytecode is pinned; nothing is left to defaults."""
    outputs = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]
    return {
        "language": "Solidity",
        "sources": {unit_name: {"content": source}},
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "evmVersion": EVM_VERSION,
            "viaIR": False,
            "metadata": {"bytecodeHash": "ipfs", "appendCBOR": True},
            "remappings": [],
            "outputSelection": {"*": {"*": outputs}},
        },
    }


def _run_solc(input_json: str) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise CompileError("`node` is not on PATH: install Node.js (make setup needs it too)")
    solc_version()  # a clear error if the package is missing
    try:
        done = subprocess.run(
            [node, "-e", _NODE_SCRIPT, str(SOLC_PACKAGE)],
            input=input_json.encode(),
            capture_output=True,
            timeout=_COMPILE_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CompileError(f"solc-js took over {_COMPILE_TIMEOUT_S}s") from exc
    if done.returncode != 0:
        raise CompileError(f"solc-js failed ({done.returncode}): {done.stderr.decode()[-4000:]}")
    output: dict[str, Any] = json.loads(done.stdout)
    return output


def _unit_name(source: Path) -> str:
    """Repository-relative, so the metadata (and bytecode) do not depend on the checkout."""
    try:
        return source.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return source.name


def compile_contract(
    source: Path, contract: str, *, cache_dir: Path | None = CACHE_DIR
) -> CompiledContract:
    """Compile ``contract`` from one self-contained source file (no imports).

    ``cache_dir=None`` always runs the compiler.
    """
    unit = _unit_name(source)
    input_json = json.dumps(_standard_input(unit, source.read_text()), sort_keys=True)
    version = solc_version()
    key = hashlib.sha256(f"{version}\n{input_json}".encode()).hexdigest()[:24]
    cached = None if cache_dir is None else cache_dir / f"{contract}-{key}.json"
    if cached is not None and cached.is_file():
        return _from_cache(contract, version, json.loads(cached.read_text()))
    output = _run_solc(input_json)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        text = "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
        raise CompileError(f"solc rejected {unit}:\n{text}")
    try:
        raw = output["contracts"][unit][contract]
    except KeyError as exc:
        raise CompileError(f"{unit} defines no contract {contract}") from exc
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(raw, sort_keys=True))
        os.replace(partial, cached)  # atomic: parallel runs never read half a file
    return _from_cache(contract, version, raw)


def _from_cache(contract: str, version: str, raw: dict[str, Any]) -> CompiledContract:
    return CompiledContract(
        name=contract,
        abi=tuple(raw["abi"]),
        bytecode=bytes.fromhex(raw["evm"]["bytecode"]["object"]),
        deployed_bytecode=bytes.fromhex(raw["evm"]["deployedBytecode"]["object"]),
        solc_version=version,
    )


def reward_token(*, cache_dir: Path | None = CACHE_DIR) -> CompiledContract:
    return compile_contract(REWARD_TOKEN_SOURCE, "RewardToken", cache_dir=cache_dir)


def deploy_reward_token(
    chain: Chain, holders: Sequence[str], *, amount_each: int, sender: str | None = None
) -> str:
    """Deploy a RewardToken that gives each holder ``amount_each`` base units.

    ``sender`` (default: the node's first account) becomes the owner who may ``mint``.
    Returns the token address.
    """
    owner = sender or chain.accounts()[0]
    ctor = encode(
        ["string", "string", "address[]", "uint256"],
        [REWARD_TOKEN_NAME, REWARD_TOKEN_SYMBOL, list(holders), amount_each],
    )
    receipt = chain.send_transaction(owner, data=reward_token().bytecode + ctor)
    if receipt.contract_address is None:
        raise ChainError(f"{receipt.tx_hash} created no contract")
    return receipt.contract_address.lower()
