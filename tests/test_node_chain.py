"""The node follows the chain safely: a backend that answers from behind, with garbage, late,
or not at all (a connection dropped before or halfway through a reply) loses no input,
processes none twice and does not end the node; a DApp killed between or in the middle of
inputs costs no input.

The node runs in this process against a JSON-RPC proxy in front of the shared anvil; the
proxy misbehaves on cue (one request each), as a load-balanced or broken RPC provider would.
Reorgs and an anvil restart, which need a chain of their own, are in test_node_faults.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from deml_protocol import inputs
from devnet.contracts import Rollups
from devnet.node import CLAIM_SUBMITTED_TOPIC, NodeConfig
from tests.node_support import (
    EPOCH,
    Faults,
    Proxy,
    Running,
    deploy_app,
    node_config,
    record_of,
    run_node,
)

pytestmark = pytest.mark.devnet


@pytest.fixture
def running() -> Iterator[Callable[[NodeConfig, Path], Running]]:
    started: list[Running] = []

    def start(config: NodeConfig, db: Path) -> Running:
        started.append(run_node(config, db))
        return started[-1]

    yield start
    for one in started:
        one.halt()


def test_a_lagging_or_broken_backend_loses_no_input(
    rollups: Rollups, tmp_path: Path, running: Callable[[NodeConfig, Path], Running]
) -> None:
    faults = Faults()
    with Proxy(rollups.chain.url, faults) as proxy:
        app = deploy_app(rollups, str(tmp_path))
        one = running(node_config(app, proxy.url), tmp_path / "node.sqlite")
        alice = rollups.chain.accounts()[1]
        faults.hide_logs = faults.garbage_block_number = True
        for amount in (1, 2, 3):
            rollups.add_input(app.application, inputs.WITHDRAW_ETHER.encode(amount), sender=alice)
        one.node.wait_until(lambda: one.processed() == 3)
        assert sorted(faults.fired) == ["garbage", "hid logs"]
        indexes = [row.index for row in one.node.store.inputs()]
        assert indexes == [0, 1, 2] and one.thread.is_alive()


def test_dropped_and_late_replies_lose_nothing_and_repeat_nothing(
    rollups: Rollups,
    tmp_path: Path,
    running: Callable[[NodeConfig, Path], Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A connection closed before a request reaches the chain (eth_getLogs), one closed
    halfway through the reply to a claim that did reach it (eth_sendTransaction: the claim is
    mined, the node never hears so), and a reply held back past the node's timeout
    (eth_call): the node ends with what a node behind a perfect backend has, and the claim
    on chain is the one it sent, adopted, not a second one."""
    caplog.set_level(logging.INFO, logger="devnet.node")
    faults = Faults()
    chain, owner, alice = rollups.chain, rollups.chain.accounts()[0], rollups.chain.accounts()[1]
    with Proxy(chain.url, faults) as proxy:
        app = deploy_app(rollups, str(tmp_path))
        config = node_config(app, proxy.url, claimer=owner, rpc_timeout_s=1.0)
        one = running(config, tmp_path / "node.sqlite")
        faults.drop_before, faults.hold = "eth_getLogs", "eth_call"
        faults.drop_after = "eth_sendTransaction"
        rollups.deposit_ether(app.application, value_wei=10**18, sender=alice)
        rollups.add_input(app.application, inputs.WITHDRAW_ETHER.encode(10**17), sender=alice)
        last = rollups.add_input(app.application, inputs.WITHDRAW_ETHER.encode(1), sender=alice)
        epoch = last.block_number // EPOCH
        chain.mine_until((epoch + 1) * EPOCH - 1)
        one.node.wait_until(lambda: epoch in {c.epoch for c in one.node.store.claims()})
        assert sorted(faults.fired) == [
            "drop_after eth_sendTransaction",
            "drop_before eth_getLogs",
            "hold eth_call",
        ]
        assert one.thread.is_alive()
        reference = running(node_config(app, chain.url), tmp_path / "reference.sqlite")
        reference.node.wait_until(lambda: reference.processed() == 3)
        assert record_of(one.node)["outputs"] == record_of(reference.node)["outputs"]
        assert record_of(one.node)["inputs"] == record_of(reference.node)["inputs"]
        assert record_of(one.node)["reports"] == record_of(reference.node)["reports"]
        claimed = chain.get_logs(
            address=app.authority,
            topics=[CLAIM_SUBMITTED_TOPIC],
            from_block=app.deployment_block,
            to_block="latest",
        )
        assert len(claimed) == 1  # one ClaimSubmitted: the dropped reply did not cause a second
        assert one.node.store.claims()[0].tx_hash == claimed[0].tx_hash
        assert one.node.store.claims()[0].root == reference.node.tree.root()
    assert "chain unavailable" in caplog.text


def test_a_dapp_killed_between_inputs_costs_no_input(
    rollups: Rollups, tmp_path: Path, running: Callable[[NodeConfig, Path], Running]
) -> None:
    """A host-side failure (the DApp process killed) is retried on a DApp rebuilt by replay:
    the input is processed as any node would process it, not marked EXCEPTION forever."""
    app = deploy_app(rollups, str(tmp_path))
    one = running(node_config(app, rollups.chain.url), tmp_path / "node.sqlite")
    alice = rollups.chain.accounts()[1]
    rollups.deposit_ether(app.application, value_wei=10**18, sender=alice)
    one.node.wait_until(lambda: one.processed() == 1)
    process = one.node.machine.process
    assert process is not None
    process.kill()  # idle, waiting for its next request: nothing about the next input
    process.wait()
    rollups.add_input(app.application, inputs.WITHDRAW_ETHER.encode(10**17), sender=alice)
    one.node.wait_until(lambda: one.processed() == 2)
    statuses = [row.status for row in one.node.store.inputs()]
    assert statuses == ["ACCEPTED", "ACCEPTED"]  # the deposit was replayed, the withdrawal ran
    assert one.node.machine.process is not process and one.thread.is_alive()


def test_a_dapp_killed_in_the_middle_of_an_input_costs_no_input(
    rollups: Rollups,
    tmp_path: Path,
    running: Callable[[NodeConfig, Path], Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGKILL once the guest server has handed the DApp an input and before its /finish: the
    input is processed once, on a DApp rebuilt from a snapshot and replay, with the output
    indexes and results of a node whose DApp never died."""
    caplog.set_level(logging.INFO, logger="devnet.node")
    app = deploy_app(rollups, str(tmp_path))
    config = node_config(
        app, rollups.chain.url, snapshot_dir=str(tmp_path / "snapshots"), snapshot_every=1
    )
    one = running(config, tmp_path / "node.sqlite")
    alice = rollups.chain.accounts()[1]
    rollups.deposit_ether(app.application, value_wei=10**18, sender=alice)
    rollups.add_input(app.application, inputs.WITHDRAW_ETHER.encode(10**17), sender=alice)
    one.node.wait_until(lambda: one.processed() == 2)
    process = one.node.machine.process
    assert process is not None
    killed: list[str] = []

    def kill_it(kind: str, body: object) -> None:
        if kind == "advance_state" and not killed:
            killed.append(kind)
            process.kill()

    one.node.machine.server.on_handout = kill_it
    rollups.add_input(app.application, inputs.WITHDRAW_ETHER.encode(10**16), sender=alice)
    one.node.wait_until(lambda: one.processed() == 3)
    assert killed and one.node.machine.process is not process
    assert one.node.started_from_snapshot == 1 and one.node.replayed == 0
    reference = running(node_config(app, rollups.chain.url), tmp_path / "reference.sqlite")
    reference.node.wait_until(lambda: reference.processed() == 3)
    assert record_of(one.node) == record_of(reference.node)
    assert [row.status for row in one.node.store.inputs()] == ["ACCEPTED"] * 3
    assert "input 2 halted the DApp" in caplog.text
