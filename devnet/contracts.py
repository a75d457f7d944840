"""The Cartesi Rollups 2.2.0 contracts on a devnet: deploy them and call them.

The bytecode is the npm package's (``@cartesi/rollups/out``), deployed through the standard
CREATE2 deployer with a zero salt, exactly as the Cartesi CLI devnet and public chains do,
so every address equals the constant in :mod:`deml_protocol.addresses` and code written
against the devnet works unchanged on a real chain. Deployment skips contracts already
present, so it is idempotent (and a no-op on a chain that ships them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, NamedTuple, TypedDict

from eth_abi.abi import decode, encode
from eth_abi.exceptions import DecodingError

from deml_protocol import addresses as addr
from deml_protocol.abi import keccak256, selector_of

from .anvil import REPO_ROOT
from .chain import BadReply, Chain, ChainError, Receipt, encode_call

__all__ = [
    "ROLLUPS_OUT",
    "AdvanceMetadata",
    "AppDeployment",
    "Artifact",
    "InputAdded",
    "Rollups",
    "balance_of",
    "create2_address",
    "decode_evm_advance",
    "deploy_rollups",
    "error_names",
    "load_artifact",
]

ROLLUPS_OUT: Final = REPO_ROOT / "node_modules" / "@cartesi" / "rollups" / "out"
ZERO_SALT: Final = bytes(32)
INPUT_ADDED_TOPIC: Final = keccak256(b"InputAdded(address,uint256,bytes)")
EVM_ADVANCE: Final = "EvmAdvance(uint256,address,address,uint256,uint256,uint256,uint256,bytes)"
_EVM_ADVANCE_TYPES: Final = ["uint256", "address", "address", "uint256"] + ["uint256"] * 3
_PROOF: Final = "(uint64,bytes32[])"

# (artifact, expected address, constructor types, constructor argument addresses), in
# dependency order. QuorumFactory is optional: deployed only if the package ships it.
_DEPLOYMENTS: Final[tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]] = (
    ("InputBox", addr.INPUT_BOX, (), ()),
    ("EtherPortal", addr.ETHER_PORTAL, ("address",), (addr.INPUT_BOX,)),
    ("ERC20Portal", addr.ERC20_PORTAL, ("address",), (addr.INPUT_BOX,)),
    ("ERC721Portal", addr.ERC721_PORTAL, ("address",), (addr.INPUT_BOX,)),
    ("ERC1155SinglePortal", addr.ERC1155_SINGLE_PORTAL, ("address",), (addr.INPUT_BOX,)),
    ("ERC1155BatchPortal", addr.ERC1155_BATCH_PORTAL, ("address",), (addr.INPUT_BOX,)),
    ("SafeERC20Transfer", addr.SAFE_ERC20_TRANSFER, (), ()),
    ("AuthorityFactory", addr.AUTHORITY_FACTORY, (), ()),
    ("ApplicationFactory", addr.APPLICATION_FACTORY, (), ()),
    ("QuorumFactory", addr.QUORUM_FACTORY, (), ()),
    (
        "SelfHostedApplicationFactory",
        addr.SELF_HOSTED_APPLICATION_FACTORY,
        ("address", "address"),
        (addr.AUTHORITY_FACTORY, addr.APPLICATION_FACTORY),
    ),
)
_OPTIONAL: Final = frozenset({"QuorumFactory"})


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: bytes

    def init_code(self, ctor_types: Sequence[str] = (), ctor_args: Sequence[Any] = ()) -> bytes:
        return self.bytecode + encode(list(ctor_types), list(ctor_args))


def _require_out(out: Path) -> None:
    if not out.is_dir():
        raise FileNotFoundError(f"{out} is missing: run `make setup` (npm install)")


def load_artifact(name: str, out: Path = ROLLUPS_OUT) -> Artifact:
    """A Foundry artifact from ``out/<name>.sol/<name>.json`` (creation bytecode, ABI)."""
    _require_out(out)
    path = out / f"{name}.sol" / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no artifact {name} in {out}")
    raw = json.loads(path.read_text())
    if raw["bytecode"].get("linkReferences"):
        raise ValueError(f"{name} needs library linking, which devnet does not do")
    code = raw["bytecode"]["object"]
    return Artifact(name, tuple(raw["abi"]), bytes.fromhex(code.removeprefix("0x")))


def _canonical_type(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@lru_cache(maxsize=1)
def error_names(out: Path = ROLLUPS_OUT) -> dict[bytes, str]:
    """Selector -> signature for every custom error in the package, for revert messages."""
    _require_out(out)
    names: dict[bytes, str] = {}
    for path in sorted(out.glob("*.sol/*.json")):
        for entry in json.loads(path.read_text()).get("abi", []):
            if entry.get("type") == "error":
                types = ",".join(_canonical_type(p) for p in entry["inputs"])
                signature = f"{entry['name']}({types})"
                names[selector_of(signature)] = signature
    return names


def create2_address(deployer: str, salt: bytes, init_code: bytes) -> str:
    digest = keccak256(b"\xff" + bytes.fromhex(deployer[2:]) + salt + keccak256(init_code))
    return "0x" + digest[12:].hex()


def _present(out: Path, name: str) -> bool:
    return (out / f"{name}.sol" / f"{name}.json").is_file()


def deploy_rollups(chain: Chain, sender: str, *, out: Path = ROLLUPS_OUT) -> Rollups:
    """Deploy (or find) every rollups contract at its canonical address; idempotent."""
    if not chain.get_code(addr.CREATE2_DEPLOYER):
        raise ChainError(
            f"no CREATE2 deployer at {addr.CREATE2_DEPLOYER}: anvil predeploys it; on other "
            "chains deploy it first (github.com/Arachnid/deterministic-deployment-proxy)"
        )
    chain.register_errors(error_names(out))
    found: dict[str, str] = {}
    deployed: list[str] = []
    for name, expected, ctor_types, ctor_args in _DEPLOYMENTS:
        if name in _OPTIONAL and not _present(out, name):
            continue
        init_code = load_artifact(name, out).init_code(ctor_types, ctor_args)
        address = create2_address(addr.CREATE2_DEPLOYER, ZERO_SALT, init_code)
        if address != expected:
            raise ChainError(f"{name} would land at {address}, not {expected}: wrong package?")
        if not chain.get_code(address):
            chain.send_transaction(sender, to=addr.CREATE2_DEPLOYER, data=ZERO_SALT + init_code)
            if not chain.get_code(address):
                raise ChainError(f"deploying {name} left no code at {address}")
            deployed.append(name)
        found[name] = address
    return Rollups(chain, found, tuple(deployed))


class AppDeployment(NamedTuple):
    application: str
    authority: str
    deployment_block: int


class AdvanceMetadata(TypedDict):
    """The ``metadata`` object of a ``/finish`` advance request (guest HTTP API)."""

    chain_id: int
    app_contract: str
    msg_sender: str
    block_number: int
    block_timestamp: int
    prev_randao: str
    input_index: int


@dataclass(frozen=True, slots=True)
class InputAdded:
    """One ``InputBox.InputAdded`` event: ``raw_input`` is the EvmAdvance call data."""

    app: str
    index: int
    raw_input: bytes
    block_number: int
    tx_hash: str
    block_hash: str = ""


def decode_evm_advance(raw: bytes) -> tuple[AdvanceMetadata, bytes]:
    """Split an ``EvmAdvance`` input into the guest API's metadata and the payload."""
    if raw[:4] != selector_of(EVM_ADVANCE):
        raise ValueError(f"not an EvmAdvance input (selector 0x{raw[:4].hex()})")
    values = decode([*_EVM_ADVANCE_TYPES, "bytes"], raw[4:])
    chain_id, app, sender, number, timestamp, randao, index, payload = values
    metadata = AdvanceMetadata(
        chain_id=chain_id,
        app_contract=app.lower(),
        msg_sender=sender.lower(),
        block_number=number,
        block_timestamp=timestamp,
        prev_randao="0x" + randao.to_bytes(32, "big").hex(),
        input_index=index,
    )
    return metadata, bytes(payload)


def balance_of(chain: Chain, token: str, holder: str) -> int:
    balance: int = chain.call_fn(token, "balanceOf(address)", holder, returns=["uint256"])
    return balance


def _input_added(log_topics: Sequence[bytes], data: bytes) -> tuple[str, int, bytes]:
    app = "0x" + log_topics[1][12:].hex()
    return app, int.from_bytes(log_topics[2], "big"), bytes(decode(["bytes"], data)[0])


@dataclass(frozen=True, slots=True)
class Rollups:
    """The deployed contracts on one chain, and the calls a devnet makes to them.

    ``deployed`` names what :func:`deploy_rollups` had to deploy (empty on a second run).
    """

    chain: Chain
    addresses: dict[str, str]
    deployed: tuple[str, ...] = ()

    def deploy_application(
        self, owner: str, *, epoch_length: int, template_hash: bytes, salt: bytes = ZERO_SALT
    ) -> AppDeployment:
        """An Application plus its own Authority (owned by ``owner``), reading the InputBox."""
        data_availability = encode_call("InputBox(address)", addr.INPUT_BOX)
        args = (owner, epoch_length, owner, template_hash, data_availability, salt)
        signature = "(address,uint256,address,bytes32,bytes,bytes32)"
        factory = addr.SELF_HOSTED_APPLICATION_FACTORY
        app, authority = self.chain.call_fn(
            factory, f"calculateAddresses{signature}", *args, returns=["address", "address"]
        )
        receipt = self.chain.transact(owner, factory, f"deployContracts{signature}", *args)
        if not self.chain.get_code(app):
            raise ChainError(f"deployContracts left no Application at {app}")
        return AppDeployment(app.lower(), authority.lower(), receipt.block_number)

    def _inputs_in(self, receipt: Receipt) -> InputAdded:
        for log in receipt.logs:
            if log.address == addr.INPUT_BOX and log.topics[:1] == (INPUT_ADDED_TOPIC,):
                app, index, raw = _input_added(log.topics, log.data)
                return InputAdded(app, index, raw, log.block_number, log.tx_hash, log.block_hash)
        raise ChainError(f"{receipt.tx_hash} added no input")

    def add_input(self, app: str, payload: bytes, *, sender: str) -> InputAdded:
        signature = "addInput(address,bytes)"
        return self._inputs_in(self.chain.transact(sender, addr.INPUT_BOX, signature, app, payload))

    def deposit_ether(
        self, app: str, *, value_wei: int, exec_layer_data: bytes = b"", sender: str
    ) -> InputAdded:
        receipt = self.chain.transact(
            sender,
            addr.ETHER_PORTAL,
            "depositEther(address,bytes)",
            app,
            exec_layer_data,
            value=value_wei,
        )
        return self._inputs_in(receipt)

    def deposit_erc20(
        self, token: str, app: str, *, amount: int, exec_layer_data: bytes = b"", sender: str
    ) -> InputAdded:
        """Approve the ERC20Portal for ``amount``, then deposit it into ``app``."""
        self.chain.transact(sender, token, "approve(address,uint256)", addr.ERC20_PORTAL, amount)
        signature = "depositERC20Tokens(address,address,uint256,bytes)"
        receipt = self.chain.transact(
            sender, addr.ERC20_PORTAL, signature, token, app, amount, exec_layer_data
        )
        return self._inputs_in(receipt)

    def input_added_logs(
        self, app: str, *, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[InputAdded]:
        app_topic = bytes(12) + bytes.fromhex(addr.normalize_address(app)[2:])
        logs = self.chain.get_logs(
            address=addr.INPUT_BOX,
            topics=[INPUT_ADDED_TOPIC, app_topic],
            from_block=from_block,
            to_block=to_block,
        )
        try:
            found = [(log, _input_added(log.topics, log.data)) for log in logs]
        except (IndexError, DecodingError) as exc:  # a broken backend, not a broken input
            raise BadReply(f"malformed InputAdded log: {exc!r}") from exc
        return [
            InputAdded(a, i, raw, log.block_number, log.tx_hash, log.block_hash)
            for log, (a, i, raw) in found
        ]

    def number_of_inputs(self, app: str, *, block: int | str = "latest") -> int:
        """``InputBox.getNumberOfInputs(app)`` as of ``block``."""
        signature = "getNumberOfInputs(address)"
        count = self.chain.call_fn(addr.INPUT_BOX, signature, app, returns=["uint256"], block=block)
        return int(count)

    def submit_claim(
        self, authority: str, app: str, *, last_block: int, root: bytes, sender: str
    ) -> Receipt:
        """``last_block`` must end an epoch (``% epoch_length == epoch_length - 1``) and be
        in the past; ``root`` is the cumulative outputs root after that epoch's inputs."""
        signature = "submitClaim(address,uint256,bytes32)"
        return self.chain.transact(sender, authority, signature, app, last_block, root)

    def execute_output(
        self, app: str, output: bytes, *, index: int, siblings: Sequence[bytes], sender: str
    ) -> Receipt:
        proof = (index, list(siblings))
        return self.chain.transact(sender, app, f"executeOutput(bytes,{_PROOF})", output, proof)

    def validate_output(
        self, app: str, output: bytes, *, index: int, siblings: Sequence[bytes]
    ) -> None:
        """Return if the proof matches a claimed root; raise TransactionReverted if not."""
        data = encode_call(f"validateOutput(bytes,{_PROOF})", output, (index, list(siblings)))
        self.chain.call(app, data)

    def was_output_executed(self, app: str, index: int) -> bool:
        executed: bool = self.chain.call_fn(
            app, "wasOutputExecuted(uint256)", index, returns=["bool"]
        )
        return executed
