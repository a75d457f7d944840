"""The chain side of the devnet against a real anvil and the real rollups bytecode.

One end-to-end story: deploy, send inputs and deposits, claim an outputs root built by
devnet.merkle, then validate and execute outputs exactly as a client would on L1.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_abi.abi import encode

from deml_protocol import addresses as addr
from deml_protocol.abi import keccak256, selector_of
from deml_protocol.outputs import notice_output, voucher_output
from devnet.anvil import REPO_ROOT, Anvil, AnvilConfig, AnvilNotInstalled, find_anvil
from devnet.chain import Chain, TransactionReverted, encode_call, parse_signature
from devnet.contracts import AppDeployment, Rollups, balance_of, decode_evm_advance, deploy_rollups
from devnet.merkle import OutputsMerkleTree
from devnet.solidity import deploy_reward_token, reward_token

pytestmark = pytest.mark.devnet

ETH = 10**18
EPOCH_LENGTH = 10
TEMPLATE_HASH = bytes.fromhex("11" * 32)

OUTPUT_NOT_REEXECUTABLE = bytes.fromhex("7b97a6bb")
OUTPUT_NOT_EXECUTABLE = bytes.fromhex("d284c01e")
INVALID_OUTPUTS_MERKLE_ROOT = bytes.fromhex("44a192ff")
NOT_EPOCH_FINAL_BLOCK = bytes.fromhex("c92a0d69")


def new_app(rollups: Rollups, name: str) -> AppDeployment:
    owner = rollups.chain.accounts()[0]
    salt = keccak256(name.encode())
    return rollups.deploy_application(
        owner, epoch_length=EPOCH_LENGTH, template_hash=TEMPLATE_HASH, salt=salt
    )


def test_contracts_at_canonical_addresses_and_idempotent(rollups: Rollups) -> None:
    expected = {
        "InputBox": addr.INPUT_BOX,
        "EtherPortal": addr.ETHER_PORTAL,
        "ERC20Portal": addr.ERC20_PORTAL,
        "ERC721Portal": addr.ERC721_PORTAL,
        "ERC1155SinglePortal": addr.ERC1155_SINGLE_PORTAL,
        "ERC1155BatchPortal": addr.ERC1155_BATCH_PORTAL,
        "SafeERC20Transfer": addr.SAFE_ERC20_TRANSFER,
        "AuthorityFactory": addr.AUTHORITY_FACTORY,
        "ApplicationFactory": addr.APPLICATION_FACTORY,
        "QuorumFactory": addr.QUORUM_FACTORY,
        "SelfHostedApplicationFactory": addr.SELF_HOSTED_APPLICATION_FACTORY,
    }
    assert rollups.addresses == expected
    for address in expected.values():
        assert rollups.chain.get_code(address)
    again = deploy_rollups(rollups.chain, rollups.chain.accounts()[0])
    assert again.deployed == ()
    assert again.addresses == expected


def test_deploy_application(rollups: Rollups) -> None:
    chain = rollups.chain
    owner = chain.accounts()[0]
    app, authority, block = new_app(rollups, "deploy")
    assert chain.call_fn(app, "getTemplateHash()", returns=["bytes32"]) == TEMPLATE_HASH
    assert chain.call_fn(app, "getOutputsMerkleRootValidator()", returns=["address"]) == authority
    assert chain.call_fn(app, "owner()", returns=["address"]) == owner
    assert chain.call_fn(authority, "getEpochLength()", returns=["uint256"]) == EPOCH_LENGTH
    assert chain.call_fn(app, "getDeploymentBlockNumber()", returns=["uint256"]) == block
    data_availability = chain.call_fn(app, "getDataAvailability()", returns=["bytes"])
    assert data_availability == bytes.fromhex("b12c9ede") + bytes(12) + bytes.fromhex(
        addr.INPUT_BOX[2:]
    )


def test_add_input_and_decode_metadata(rollups: Rollups) -> None:
    chain = rollups.chain
    sender = chain.accounts()[1]
    app, _, deployed_at = new_app(rollups, "inputs")
    first = rollups.add_input(app, b"hello", sender=sender)
    second = rollups.add_input(app, b"", sender=sender)
    assert (first.app, first.index, second.index) == (app, 0, 1)
    assert first.raw_input[:4].hex() == "415bf363"
    metadata, payload = decode_evm_advance(first.raw_input)
    block = chain.get_block(first.block_number)
    assert payload == b"hello"
    assert metadata == {
        "chain_id": 31337,
        "app_contract": app,
        "msg_sender": sender,
        "block_number": first.block_number,
        "block_timestamp": block.timestamp,
        "prev_randao": "0x" + block.prev_randao.hex(),
        "input_index": 0,
    }
    assert decode_evm_advance(second.raw_input)[1] == b""
    logs = rollups.input_added_logs(app, from_block=deployed_at)
    assert logs == [first, second]
    with pytest.raises(ValueError, match="EvmAdvance"):
        decode_evm_advance(b"\x00" * 40)


def test_input_too_large_reverts_with_selector(rollups: Rollups) -> None:
    app, _, _ = new_app(rollups, "too-large")
    sender = rollups.chain.accounts()[0]
    rollups.add_input(app, bytes(65216), sender=sender)
    with pytest.raises(TransactionReverted) as info:
        rollups.add_input(app, bytes(65217), sender=sender)
    assert info.value.selector == selector_of("InputTooLarge(address,uint256,uint256)")
    assert info.value.error_name == "InputTooLarge(address,uint256,uint256)"


def deposit_and_check_payloads(rollups: Rollups, app: str, token: str, alice: str) -> None:
    """2 ETH and 100 tokens from alice; the packed portal layouts of fact sheet §2.3."""
    chain = rollups.chain
    ether = rollups.deposit_ether(app, value_wei=2 * ETH, exec_layer_data=b"\xde\xad", sender=alice)
    meta, payload = decode_evm_advance(ether.raw_input)
    assert meta["msg_sender"] == addr.ETHER_PORTAL
    assert payload == bytes.fromhex(alice[2:]) + (2 * ETH).to_bytes(32, "big") + b"\xde\xad"
    assert chain.get_balance(app) == 2 * ETH

    tokens = rollups.deposit_erc20(
        token, app, amount=100 * ETH, exec_layer_data=b"job", sender=alice
    )
    meta, payload = decode_evm_advance(tokens.raw_input)
    assert (meta["msg_sender"], meta["input_index"]) == (addr.ERC20_PORTAL, 1)
    header = bytes.fromhex(token[2:]) + bytes.fromhex(alice[2:]) + (100 * ETH).to_bytes(32, "big")
    assert payload == header + b"job"
    assert balance_of(chain, token, app) == 100 * ETH


def claim_current_epoch(rollups: Rollups, app: AppDeployment, root: bytes) -> None:
    """Claim ``root`` for the epoch holding the latest block, once that epoch is over."""
    chain, owner = rollups.chain, rollups.chain.accounts()[0]
    last_block = (chain.block_number() // EPOCH_LENGTH + 1) * EPOCH_LENGTH - 1
    with pytest.raises(TransactionReverted) as info:
        rollups.submit_claim(
            app.authority, app.application, last_block=last_block + 1, root=root, sender=owner
        )
    assert info.value.selector == NOT_EPOCH_FINAL_BLOCK
    chain.mine_until(last_block + 1)
    rollups.submit_claim(
        app.authority, app.application, last_block=last_block, root=root, sender=owner
    )


def test_deposits_claim_validate_and_execute(rollups: Rollups) -> None:
    chain = rollups.chain
    owner, alice, bob = chain.accounts()[:3]
    deployment = new_app(rollups, "full-flow")
    app = deployment.application
    token = deploy_reward_token(chain, [owner, alice], amount_each=1_000 * ETH)
    deposit_and_check_payloads(rollups, app, token, alice)

    transfer = encode_call("transfer(address,uint256)", bob, 40 * ETH)
    outputs = [
        notice_output(b"round result"),
        voucher_output(bob, ETH, b""),
        voucher_output(token, 0, transfer),
    ]
    assert [o[:4].hex() for o in outputs] == ["c258d6e5", "237a816f", "237a816f"]
    tree = OutputsMerkleTree()
    for output in outputs:
        tree.append_output(output)
    claim_current_epoch(rollups, deployment, tree.root())

    rollups.validate_output(app, outputs[0], index=0, siblings=tree.siblings(0))
    with pytest.raises(TransactionReverted) as info:
        rollups.validate_output(app, outputs[0], index=1, siblings=tree.siblings(0))
    assert info.value.selector == INVALID_OUTPUTS_MERKLE_ROOT
    with pytest.raises(TransactionReverted) as info:
        rollups.execute_output(app, outputs[0], index=0, siblings=tree.siblings(0), sender=bob)
    assert info.value.selector == OUTPUT_NOT_EXECUTABLE

    bob_wei = chain.get_balance(bob)
    rollups.execute_output(app, outputs[1], index=1, siblings=tree.siblings(1), sender=owner)
    assert (chain.get_balance(bob), chain.get_balance(app)) == (bob_wei + ETH, ETH)
    rollups.execute_output(app, outputs[2], index=2, siblings=tree.siblings(2), sender=owner)
    assert (balance_of(chain, token, bob), balance_of(chain, token, app)) == (40 * ETH, 60 * ETH)
    assert [rollups.was_output_executed(app, i) for i in range(3)] == [False, True, True]

    with pytest.raises(TransactionReverted) as info:
        rollups.execute_output(app, outputs[1], index=1, siblings=tree.siblings(1), sender=owner)
    assert info.value.selector == OUTPUT_NOT_REEXECUTABLE
    assert info.value.error_name == "OutputNotReexecutable(bytes)"
    assert "OutputNotReexecutable" in str(info.value)


def test_reward_token_is_a_plain_erc20(chain: Chain) -> None:
    owner, alice = chain.accounts()[:2]
    token = deploy_reward_token(chain, [alice], amount_each=5)
    assert chain.call_fn(token, "decimals()", returns=["uint8"]) == 18
    assert chain.call_fn(token, "symbol()", returns=["string"]) == "DMLR"
    assert chain.call_fn(token, "totalSupply()", returns=["uint256"]) == 5
    chain.transact(owner, token, "mint(address,uint256)", owner, 7)
    assert balance_of(chain, token, owner) == 7
    with pytest.raises(TransactionReverted) as info:
        chain.transact(alice, token, "transfer(address,uint256)", owner, 6)
    insufficient = selector_of("ERC20InsufficientBalance(address,uint256,uint256)")
    assert info.value.selector == insufficient
    # With the gas given there is no estimate: the tx is mined with status 0 and replayed.
    transfer = encode_call("transfer(address,uint256)", owner, 6)
    with pytest.raises(TransactionReverted) as info:
        chain.send_transaction(alice, to=token, data=transfer, gas=100_000)
    assert info.value.selector == insufficient
    assert info.value.tx_hash is not None
    with pytest.raises(TransactionReverted):
        chain.transact(alice, token, "mint(address,uint256)", alice, 1)


def test_reward_token_compiles_reproducibly(tmp_path: Path) -> None:
    first = reward_token(cache_dir=None)
    second = reward_token(cache_dir=tmp_path)  # compiled again (empty cache), then cached
    assert first.bytecode == second.bytecode
    assert first.deployed_bytecode == second.deployed_bytecode
    assert len(list(tmp_path.iterdir())) == 1
    assert reward_token(cache_dir=tmp_path).bytecode == first.bytecode  # from the cache


def test_parse_signature_handles_tuples() -> None:
    assert parse_signature("f()") == ("f", ())
    signature = "executeOutput(bytes,(uint64,bytes32[]))"
    assert parse_signature(signature) == ("executeOutput", ("bytes", "(uint64,bytes32[])"))
    assert encode_call(signature, b"", (0, []))[:4].hex() == "33137b76"


def test_revert_reasons_are_decoded() -> None:
    error = TransactionReverted(selector_of("Error(string)") + encode(["string"], ["nope"]))
    assert (error.reason, error.selector.hex()) == ("nope", "08c379a0")
    panic = TransactionReverted(selector_of("Panic(uint256)") + encode(["uint256"], [0x11]))
    assert panic.reason == "panic 0x11"
    assert TransactionReverted(b"").selector == b""


def test_missing_node_modules_says_make_setup(tmp_path: Path) -> None:
    with pytest.raises(AnvilNotInstalled, match="make setup"):
        find_anvil(tmp_path)


def test_interval_mining_and_clean_stop() -> None:
    with Anvil(AnvilConfig(block_time_s=0.2)) as node:
        chain = Chain(node.url)
        start = chain.block_number()
        # No transaction is sent: a new block can only come from interval mining.
        assert _wait(lambda: chain.block_number() > start, seconds=30)
        pid = node.pid
    assert pid is not None and not _alive(pid)
    assert not node.is_running


def _wait(condition: Callable[[], bool], *, seconds: float) -> bool:
    """True once ``condition()`` holds; anvil offers no event over HTTP, so ask it again
    every 20 ms (the deadline only bounds a broken anvil, it is not what the test measures)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _alive(pid: int) -> bool:
    """Alive and not a zombie (a container's init may be slow to reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
def test_anvil_dies_with_a_sigkilled_parent() -> None:
    script = "import time; from devnet.anvil import Anvil; a = Anvil().start(); "
    script += "print(a.pid, flush=True); time.sleep(120)"
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    anvil_pid = int(parent.stdout.readline())
    try:
        assert _alive(anvil_pid)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        exited = os.pidfd_open(anvil_pid)  # readable once the process has exited: no polling
        try:
            select.select([exited], [], [], 30)
        finally:
            os.close(exited)
        assert not _alive(anvil_pid), "anvil outlived its SIGKILLed parent"
    finally:
        if _alive(anvil_pid) and b"anvil" in Path(f"/proc/{anvil_pid}/cmdline").read_bytes():
            os.kill(anvil_pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
