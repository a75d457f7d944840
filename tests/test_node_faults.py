"""Faults that need a chain of their own: a reorg under processed inputs and claims, and
anvil stopped and restarted from its dumped state; and restarts from state snapshots.

One private anvil serves this module (rewinding or restarting the shared one would break
other tests); its state file lets it restart with the same blocks, hashes and logs.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from deml_protocol import inputs
from devnet.anvil import Anvil, AnvilConfig, free_port
from devnet.chain import Chain
from devnet.contracts import Rollups, deploy_rollups
from devnet.node import Node
from devnet.store import Store
from tests.node_support import EPOCH, deploy_app, node_config, record_of, run_node

pytestmark = pytest.mark.devnet
ETH = 10**18


@pytest.fixture(scope="module")
def own_anvil() -> Iterator[Anvil]:
    with tempfile.TemporaryDirectory(prefix="deml-anvil-state-") as state:
        config = AnvilConfig(port=free_port(), state_path=Path(state) / "state.json")
        with Anvil(config) as anvil:
            yield anvil


@pytest.fixture(scope="module")
def own_rollups(own_anvil: Anvil) -> Iterator[Rollups]:
    chain = Chain(own_anvil.url)
    yield deploy_rollups(chain, chain.accounts()[0])
    chain.close()


def test_a_reorg_is_rolled_back_and_the_new_chain_followed(
    own_rollups: Rollups, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Inputs are processed and their epoch claimed; then the chain reorganizes (evm_revert
    under them) and other inputs take their place. The node drops the orphaned inputs, their
    outputs and the orphaned claim, rebuilds the DApp and ends with what a node that only
    ever saw the final chain has: same inputs, statuses, outputs, reports, roots, claims."""
    caplog.set_level(logging.INFO, logger="devnet.node")
    rollups, chain = own_rollups, own_rollups.chain
    owner, alice, bob = chain.accounts()[:3]
    app = deploy_app(rollups, str(tmp_path))
    config = node_config(
        app, chain.url, claimer=owner, snapshot_dir=str(tmp_path / "snap"), snapshot_every=2
    )
    one = run_node(config, tmp_path / "node.sqlite")
    try:
        rollups.deposit_ether(app.application, value_wei=ETH, sender=alice)
        one.node.wait_until(lambda: one.processed() == 1)
        fork = chain.snapshot()
        rollups.add_input(app.application, inputs.WITHDRAW_ETHER.encode(1), sender=alice)
        last = rollups.deposit_ether(app.application, value_wei=2 * ETH, sender=alice)
        epoch = last.block_number // EPOCH
        chain.mine_until((epoch + 1) * EPOCH - 1)
        one.node.wait_until(lambda: epoch in {c.epoch for c in one.node.store.claims()})
        orphaned_claim = one.node.store.claims()[-1]

        chain.revert_to(fork)  # the two inputs and the claim are gone; other inputs instead:
        replacing = [
            rollups.add_input(app.application, inputs.WITHDRAW_ETHER.encode(ETH), sender=alice),
            rollups.deposit_ether(app.application, value_wei=ETH, sender=bob),
            rollups.add_input(app.application, inputs.WITHDRAW_ETHER.encode(7), sender=bob),
        ]
        epoch = replacing[-1].block_number // EPOCH
        chain.mine_until((epoch + 1) * EPOCH - 1)
        tx_hashes = [event.tx_hash for event in replacing]

        def followed() -> bool:
            stored = one.node.store.inputs()
            claimed = {c.epoch for c in one.node.store.claims()}
            return (
                [i.tx_hash for i in stored[1:]] == tx_hashes
                and epoch in claimed
                and all(i.status != "NONE" for i in stored)
            )

        one.node.wait_until(followed)
        reference = run_node(
            node_config(app, chain.url, claimer=owner), tmp_path / "reference.sqlite"
        )
        try:
            reference.node.wait_until(
                lambda: epoch in {c.epoch for c in reference.node.store.claims()}
            )
            assert record_of(one.node) == record_of(reference.node)
            # The reference adopted the claims on chain (NotFirstClaim), so the node sent
            # each of them, once, with the root of the final chain.
            assert [c.tx_hash for c in one.node.store.claims()] == [
                c.tx_hash for c in reference.node.store.claims()
            ]
        finally:
            reference.halt()
        assert orphaned_claim.tx_hash not in {c.tx_hash for c in one.node.store.claims()}
        assert "reorg at block" in caplog.text and "2 inputs dropped" in caplog.text
        assert one.thread.is_alive()
    finally:
        one.halt()


def send_inputs(rollups: Rollups, app: str, sender: str, count: int) -> None:
    """Deposits, withdrawals that pay (a voucher each) and withdrawals that are rejected."""
    for i in range(count):
        if i % 3 == 0:
            rollups.deposit_ether(app, value_wei=ETH, sender=sender)
        elif i % 3 == 1:
            rollups.add_input(app, inputs.WITHDRAW_ETHER.encode(ETH // 10 + i), sender=sender)
        else:
            rollups.add_input(app, inputs.WITHDRAW_ETHER.encode(100 * ETH), sender=sender)


def test_a_restart_replays_only_the_inputs_after_the_last_snapshot(
    rollups: Rollups, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Snapshots every 2 inputs; after 5 inputs a restarted node starts from the snapshot
    taken after input 3 and replays 1 input (counted, not timed), then processes 2 more. A
    snapshot that is not the state recorded is refused by the DApp, logged, and the node
    replays everything: that full replay checks every stored result (ReplayMismatch
    otherwise), so the results after the snapshot start equal a node's that replayed all."""
    caplog.set_level(logging.INFO, logger="devnet.node")
    app = deploy_app(rollups, str(tmp_path))
    alice = rollups.chain.accounts()[1]
    snapshots = tmp_path / "snapshots"
    config = node_config(
        app, rollups.chain.url, snapshot_dir=str(snapshots), snapshot_every=2, snapshots_kept=1
    )
    one = run_node(config, tmp_path / "node.sqlite")
    send_inputs(rollups, app.application, alice, 5)
    one.node.wait_until(lambda: one.processed() == 5)
    one.halt()
    assert one.node.store.snapshots() == [
        (3, (snapshots / "state-000000000003.sha256").read_text())
    ]

    one = run_node(config, tmp_path / "node.sqlite")
    assert (one.node.started_from_snapshot, one.node.replayed) == (3, 1)
    send_inputs(rollups, app.application, alice, 2)  # a deposit, then a paid withdrawal
    one.node.wait_until(lambda: one.processed() == 7)
    one.halt()
    assert one.node.store.outputs()[-1].input_index == 6  # the withdrawal paid, after restart

    # Another state in the snapshot file, and its own digest beside it: the node's record
    # of the digest catches it.
    latest, digest = one.node.store.snapshots()[0]
    state_file = snapshots / f"state-{latest:012d}.json"
    state_file.write_bytes(state_file.read_bytes().replace(b'"int":"1', b'"int":"2', 1))
    (snapshots / f"state-{latest:012d}.sha256").write_text("0" * 64)
    restarted = Node(config, Store(tmp_path / "node.sqlite")).start()
    assert (restarted.started_from_snapshot, restarted.replayed) == (None, 7)
    # The replay wrote it again, right this time, and the node recorded it.
    assert restarted.store.snapshots() == [(latest, digest)]
    restarted.stop()
    assert f"snapshot after input {latest} refused by the DApp" in caplog.text


def test_anvil_restarted_from_its_dumped_state(
    own_anvil: Anvil, own_rollups: Rollups, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """anvil stops (dumping its state) while the node runs, and comes back from that dump on
    the same port: the node rides out the outage, sees no reorg (same blocks and hashes),
    and ends with a clean run's inputs, outputs and claims."""
    caplog.set_level(logging.INFO, logger="devnet.node")
    rollups, chain = own_rollups, own_rollups.chain
    owner, alice = chain.accounts()[0], chain.accounts()[3]
    app = deploy_app(rollups, str(tmp_path))
    one = run_node(node_config(app, chain.url, claimer=owner), tmp_path / "node.sqlite")
    try:
        send_inputs(rollups, app.application, alice, 3)
        one.node.wait_until(lambda: one.processed() == 3)
        outages = one.node.outages
        own_anvil.stop()
        one.node.wait_until(lambda: one.node.outages > outages)
        own_anvil.start()
        send_inputs(rollups, app.application, alice, 3)
        epoch = chain.block_number() // EPOCH
        chain.mine_until((epoch + 1) * EPOCH - 1)
        one.node.wait_until(lambda: epoch in {c.epoch for c in one.node.store.claims()})
        reference = run_node(node_config(app, chain.url), tmp_path / "reference.sqlite")
        reference.node.wait_until(lambda: reference.processed() == 6)
        reference.halt()
        mine = record_of(one.node)
        assert mine | {"claims": []} == record_of(reference.node) | {"claims": []}
        assert mine["claims"][-1][2] == reference.node.tree.root()
        assert "reorg" not in caplog.text and one.thread.is_alive()
    finally:
        one.halt()
