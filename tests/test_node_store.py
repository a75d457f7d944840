"""The node store's record of blocks and its rollback to a fork point (no chain needed)."""

from __future__ import annotations

from pathlib import Path

from devnet.store import ClaimRow, OutputRow, Store


def h(block: int) -> str:
    return "0x" + format(block, "064x")


def test_only_blocks_with_inputs_and_the_last_scan_end_are_kept(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    store.add_inputs(
        [(0, 3, b"a", "0xt0")], scanned_to=4, scanned_hash=h(4), input_blocks=[(3, h(3))]
    )
    store.add_inputs([], scanned_to=8, scanned_hash=h(8))
    store.add_inputs(
        [(1, 9, b"b", "0xt1")], scanned_to=9, scanned_hash=h(9), input_blocks=[(9, h(9))]
    )
    assert store.block_hashes(at_most=100) == [(9, h(9)), (3, h(3))]
    store.add_inputs([], scanned_to=12, scanned_hash=h(12))
    assert store.block_hashes(at_most=100) == [(12, h(12)), (9, h(9)), (3, h(3))]
    assert store.block_hashes(at_most=10) == [(9, h(9)), (3, h(3))]


def test_a_rollback_forgets_everything_after_the_fork_point(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    rows = [(0, 5, b"a", "0xt0"), (1, 7, b"b", "0xt1"), (2, 7, b"c", "0xt2"), (3, 9, b"d", "0xt3")]
    blocks = [(5, h(5)), (7, h(7)), (9, h(9))]
    store.add_inputs(rows, scanned_to=12, scanned_hash=h(12), input_blocks=blocks)
    for index in range(4):
        store.record_result(
            input_index=index,
            status="ACCEPTED",
            outputs=[OutputRow(index, index, b"out", b"hash")],
            reports=[b"report"],
            outputs_hash=b"root",
        )
        if index % 2:
            store.add_snapshot(index, f"digest {index}", keep=3)
    store.add_claim(ClaimRow(0, 9, b"root", 4, "0xclaim"))

    dropped = store.roll_back_to(6, h(6))

    assert (dropped.inputs, dropped.claims, dropped.snapshots) == ([1, 2, 3], [0], [1, 3])
    assert [row.index for row in store.inputs()] == [0]
    assert [o.input_index for o in store.outputs()] == [0]
    assert [r.input_index for r in store.reports()] == [0]
    assert store.claims() == [] and store.snapshots() == []
    assert store.block_hashes(at_most=100) == [(5, h(5))]
    assert (store.get_meta("scanned_block"), store.get_meta("scanned_hash")) == ("6", h(6))
    assert store.next_input_index() == 1


def test_a_rollback_past_every_known_block_starts_over(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.sqlite")
    store.add_inputs(
        [(0, 5, b"a", "0xt0")], scanned_to=5, scanned_hash=h(5), input_blocks=[(5, h(5))]
    )
    assert store.roll_back_to(1, None).inputs == [0]
    assert store.get_meta("scanned_block") is None and store.inputs() == []
