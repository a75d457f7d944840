"""The transport for a real Cartesi node v2 and its EVM chain, as any user of one has them.

Inputs are transactions signed here with eth-account (EIP-1559; nonce, gas and fees from the
chain through web3.py) to the InputBox and the portals; the ``InputAdded`` event gives the
input's index; the outcome is read back over the node's JSON-RPC (``cartesi_getInput``,
``cartesi_listOutputs``, ``cartesi_listReports``) once ``cartesi_getProcessedInputCount``
has passed it. Inspects are ``POST <node>/inspect/<app>`` with the path as the body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError
from web3.types import TxParams

from deml_protocol import addresses

from .results import InputOutcome, Output
from .transport import BLOCK_SECONDS

#: ``OutputValidityProof`` as executeOutput and validateOutput take it.
_OUTPUT_PROOF: dict[str, Any] = {
    "name": "proof",
    "type": "tuple",
    "components": [
        {"name": "outputIndex", "type": "uint64"},
        {"name": "outputHashesSiblings", "type": "bytes32[]"},
    ],
}
#: The contracts' functions the console calls (the Rollups 2.2.0 ABI and ERC-20's, only these
#: entries).
ROLLUPS_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "addInput",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "appContract", "type": "address"},
            {"name": "payload", "type": "bytes"},
        ],
        "outputs": [{"name": "", "type": "bytes32"}],
    },
    {
        "type": "function",
        "name": "depositEther",
        "stateMutability": "payable",
        "inputs": [
            {"name": "appContract", "type": "address"},
            {"name": "execLayerData", "type": "bytes"},
        ],
        "outputs": [],
    },
    {
        "type": "function",
        "name": "depositERC20Tokens",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "token", "type": "address"},
            {"name": "appContract", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "execLayerData", "type": "bytes"},
        ],
        "outputs": [],
    },
    {
        "type": "function",
        "name": "executeOutput",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "output", "type": "bytes"},
            _OUTPUT_PROOF,
        ],
        "outputs": [],
    },
    {
        "type": "function",
        "name": "validateOutput",
        "stateMutability": "view",
        "inputs": [
            {"name": "output", "type": "bytes"},
            _OUTPUT_PROOF,
        ],
        "outputs": [],
    },
    {
        "type": "function",
        "name": "wasOutputExecuted",
        "stateMutability": "view",
        "inputs": [{"name": "outputIndex", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "function",
        "name": "approve",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "spender", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "type": "function",
        "name": "allowance",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
]
#: keccak256("InputAdded(address,uint256,bytes)"): topics are [this, appContract, index].
INPUT_ADDED = Web3.keccak(text="InputAdded(address,uint256,bytes)")
#: Account i of a mnemonic, the path anvil and the Cartesi CLI devnet use.
HD_PATH = "m/44'/60'/0'/0/{index}"


def accounts_from_mnemonic(mnemonic: str, count: int) -> list[LocalAccount]:
    """The first ``count`` accounts of a BIP-39 mnemonic (e.g. a devnet's test mnemonic)."""
    Account.enable_unaudited_hdwallet_features()  # eth-account's own BIP-32 derivation
    return [
        Account.from_mnemonic(mnemonic, account_path=HD_PATH.format(index=i)) for i in range(count)
    ]


def poll(condition: Callable[[], bool], *, every_s: float = 0.5, first_s: float = 0.02) -> None:
    """Wait until ``condition`` holds: a real node can only be asked again (no deadline here;
    the caller decides how long a job may take). Asks again after ``first_s``, then half as
    long again each time up to ``every_s``: a node that processes an input in milliseconds
    answers at once, one that waits for blocks is not asked more than twice a second."""
    wait_s = first_s
    while not condition():
        time.sleep(wait_s)
        wait_s = min(every_s, wait_s * 1.5)


class NodeError(RuntimeError):
    """The node's JSON-RPC answered with an error."""

    code: ClassVar[str] = "node_error"


class NotClaimed(RuntimeError):
    """A voucher's epoch has no accepted claim yet: there is no proof to execute it with."""

    code: ClassVar[str] = "not_claimed"


class TransactionReverted(RuntimeError):
    """A transaction this transport sent was mined but reverted."""

    code: ClassVar[str] = "reverted"


class TransactionFailed(RuntimeError):
    """The chain refused a transaction before mining it (no ether for gas, a revert found
    while estimating gas, a bad nonce)."""

    code: ClassVar[str] = "tx_failed"


def _rpc_message(exc: Exception) -> str:
    """What the node said, without web3's dict framing."""
    first = exc.args[0] if exc.args else exc
    if isinstance(first, dict):
        return str(first.get("message", first))
    return str(first)


class NoKey(KeyError):
    """Asked to sign as an account this transport has no key for."""

    code: ClassVar[str] = "no_account"


@dataclass
class NodeTransport:
    """``rpc_url``: the chain's JSON-RPC; ``node_url``: the node (``/inspect/<app>`` and
    ``/rpc`` under it); ``app``: the Application contract; ``signers``: the accounts this
    transport may send as. ``wait_until`` re-checks a condition until it holds (default:
    :func:`poll`; the devnet passes its own, which wakes when its node stores something).
    ``dev_chain``: the chain is anvil, so ``advance_time`` may warp its clock."""

    rpc_url: str
    node_url: str
    app: str
    signers: Iterable[LocalAccount]
    wait_until: Callable[[Callable[[], bool]], None] = poll
    dev_chain: bool = False
    timeout_s: float = 30.0
    web3: Web3 = field(init=False)
    _keys: dict[str, LocalAccount] = field(init=False)

    def __post_init__(self) -> None:
        self.web3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 30}))
        self._keys = {account.address.lower(): account for account in self.signers}
        self.app = Web3.to_checksum_address(self.app)

    # ---- the Transport -------------------------------------------------------------------
    def send(
        self, sender: str, payload: bytes, *, advance_time: int = BLOCK_SECONDS
    ) -> InputOutcome:
        self._warp(advance_time)
        call = self._contract(addresses.INPUT_BOX).functions.addInput(self.app, payload)
        return self._outcome(self._transact(sender, call))

    def deposit_ether(self, depositor: str, amount: int, call: bytes = b"") -> InputOutcome:
        fn = self._contract(addresses.ETHER_PORTAL).functions.depositEther(self.app, call)
        return self._outcome(self._transact(depositor, fn, value=amount))

    def deposit_erc20(
        self, token: str, depositor: str, amount: int, call: bytes = b""
    ) -> InputOutcome:
        """Approve the ERC20Portal for what the allowance lacks, then deposit."""
        erc20 = self._contract(token).functions
        portal = Web3.to_checksum_address(addresses.ERC20_PORTAL)
        owner = Web3.to_checksum_address(depositor)
        if erc20.allowance(owner, portal).call() < amount:
            self._transact(depositor, erc20.approve(portal, amount))
        fn = self._contract(addresses.ERC20_PORTAL).functions.depositERC20Tokens(
            Web3.to_checksum_address(token), self.app, amount, call
        )
        return self._outcome(self._transact(depositor, fn))

    def inspect(self, path: str) -> InputOutcome:
        url = f"{self.node_url}/inspect/{self.app}"
        got = requests.post(url, data=path.encode(), timeout=self.timeout_s)
        got.raise_for_status()
        body = got.json()
        return InputOutcome(
            status="accepted" if body["status"] == "Accepted" else "rejected",
            reports=[_hex(report["payload"]) for report in body["reports"]],
        )

    # ---- the node's JSON-RPC -------------------------------------------------------------
    def rpc(self, method: str, **params: Any) -> Any:
        reply = requests.post(
            f"{self.node_url}/rpc",
            timeout=self.timeout_s,
            json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        ).json()
        if "error" in reply:
            raise NodeError(f"{method}: {reply['error']}")
        return reply["result"]

    def processed_inputs(self) -> int:
        got = self.rpc("cartesi_getProcessedInputCount", application=self.app)
        return int(got["data"], 16)

    def outcome_of(self, input_index: int) -> InputOutcome:
        """An input's status, outputs and reports, once the node has processed it."""
        self.wait_until(lambda: self.processed_inputs() > input_index)
        at = {"application": self.app, "input_index": hex(input_index)}
        row = self.rpc("cartesi_getInput", **at)["data"]
        outputs = self.rpc("cartesi_listOutputs", **at, limit=10_000)["data"]
        reports = self.rpc("cartesi_listReports", **at, limit=10_000)["data"]
        return InputOutcome(
            status=str(row["status"]).lower(),
            outputs=[Output(int(o["index"], 16), _hex(o["raw_data"])) for o in outputs],
            reports=[_hex(r["raw_data"]) for r in reports],
            input_index=input_index,
        )

    def execute_voucher(self, index: int, sender: str) -> bool:
        """Execute output ``index`` (a voucher) through the Application contract with the
        proof the node serves once its epoch is claimed, signed by ``sender``. False if it
        was executed already (nothing sent): executing is idempotent for the caller."""
        app = self._contract(self.app).functions
        if app.wasOutputExecuted(index).call():
            return False
        output = self.rpc("cartesi_getOutput", application=self.app, output_index=hex(index))
        siblings = output["data"]["output_hashes_siblings"]
        if siblings is None:
            raise NotClaimed(f"output {index}: its epoch is not claimed yet")
        proof = (index, [_hex(sibling) for sibling in siblings])
        self._transact(sender, app.executeOutput(_hex(output["data"]["raw_data"]), proof))
        return True

    # ---- the chain -----------------------------------------------------------------------
    def _contract(self, address: str) -> Any:
        return self.web3.eth.contract(address=Web3.to_checksum_address(address), abi=ROLLUPS_ABI)

    def _transact(self, sender: str, call: Any, *, value: int = 0) -> Mapping[str, Any]:
        """Sign ``call`` as ``sender`` (EIP-1559; web3 fills nonce, gas and fees), send it, and
        wait for its receipt; a reverted transaction raises."""
        account = self._keys.get(sender.lower())
        if account is None:
            raise NoKey(f"no key for {sender}: this transport signs for {sorted(self._keys)}")
        params: TxParams = {"from": account.address, "value": Web3.to_wei(value, "wei")}
        params["nonce"] = self.web3.eth.get_transaction_count(account.address, "pending")
        try:
            tx = call.build_transaction(params)  # estimates gas: a revert shows here
            signed = account.sign_transaction(tx)
            tx_hash = self.web3.eth.send_raw_transaction(signed.raw_transaction)
        except (Web3RPCError, ContractLogicError) as exc:  # e.g. no ether for gas
            raise TransactionFailed(
                f"the chain refused a transaction from {account.address}: {_rpc_message(exc)}"
            ) from exc
        receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            raise TransactionReverted(f"transaction 0x{tx_hash.hex()} reverted")
        return receipt

    def _outcome(self, receipt: Mapping[str, Any]) -> InputOutcome:
        input_box = addresses.INPUT_BOX.lower()
        for log in receipt["logs"]:
            if str(log["address"]).lower() == input_box and log["topics"][0] == INPUT_ADDED:
                return self.outcome_of(int.from_bytes(log["topics"][2], "big"))
        raise RuntimeError("the transaction added no input")

    def _warp(self, seconds: int) -> None:
        """On anvil, let ``seconds`` of block time pass (beyond a block's own). A real chain's
        clock cannot move: there a caller waits for the window to open instead."""
        if self.dev_chain and seconds > BLOCK_SECONDS:
            self.web3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]


def _hex(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)
