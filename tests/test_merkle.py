"""The outputs Merkle tree against the fact-sheet constants and a naive reference."""

from __future__ import annotations

import pytest

from deml_protocol.abi import keccak256
from devnet.merkle import (
    TREE_HEIGHT,
    OutputsMerkleTree,
    output_hash,
    root_from_proof,
    zero_hashes,
)

EMPTY_ROOT = bytes.fromhex("0a162946e56158bac0673e6dd3bdfdc1e4a0e7744a120fdb640050c8d7abe1c6")


def leaf(i: int) -> bytes:
    return keccak256(i.to_bytes(8, "big"))


def naive_root(leaves: list[bytes]) -> bytes:
    """Pad to a power of two with zero leaves, hash up, then climb with the zero chain."""
    level = list(leaves) or [zero_hashes()[0]]
    height = 0
    while len(level) > 1:
        if len(level) % 2:
            level.append(zero_hashes()[height])
        level = [keccak256(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        height += 1
    node = level[0]
    for h in range(height, TREE_HEIGHT):
        node = keccak256(node + zero_hashes()[h])
    return node


def test_zero_chain_matches_fact_sheet() -> None:
    zeros = zero_hashes()
    assert len(zeros) == TREE_HEIGHT + 1
    assert zeros[0] == bytes(32)
    assert zeros[1].hex().startswith("ad3228b6")
    assert zeros[TREE_HEIGHT] == EMPTY_ROOT


def test_empty_tree_root() -> None:
    tree = OutputsMerkleTree()
    assert len(tree) == 0
    assert tree.root() == EMPTY_ROOT
    assert tree.root_at(0) == EMPTY_ROOT


def test_single_leaf_root_and_proof() -> None:
    tree = OutputsMerkleTree()
    notice = bytes.fromhex("c258d6e5") + bytes(64)
    assert tree.append_output(notice) == 0
    siblings = tree.siblings(0)
    assert siblings == list(zero_hashes()[:TREE_HEIGHT])
    assert root_from_proof(output_hash(notice), 0, siblings) == tree.root()
    assert tree.root() == naive_root([output_hash(notice)])


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_root_matches_naive_reference(count: int) -> None:
    leaves = [leaf(i) for i in range(count)]
    assert OutputsMerkleTree(leaves).root() == naive_root(leaves)


def test_every_proof_verifies_and_wrong_index_fails() -> None:
    tree = OutputsMerkleTree(leaf(i) for i in range(13))
    root = tree.root()
    for i in range(13):
        siblings = tree.siblings(i)
        assert len(siblings) == TREE_HEIGHT
        assert root_from_proof(tree.leaf(i), i, siblings) == root
        assert root_from_proof(tree.leaf(i), i ^ 1, siblings) != root


def test_past_roots_and_proofs_after_more_appends() -> None:
    """A claim for an earlier epoch commits to a prefix; proofs must match that root."""
    tree = OutputsMerkleTree()
    roots = [tree.root()]
    for i in range(20):
        tree.append(leaf(i))
        roots.append(tree.root())
    for count in range(21):
        assert tree.root_at(count) == roots[count]
        assert tree.root_at(count) == naive_root([leaf(i) for i in range(count)])
        for i in range(count):
            siblings = tree.siblings(i, leaf_count=count)
            assert root_from_proof(leaf(i), i, siblings) == roots[count]


def test_interleaved_appends_and_queries() -> None:
    """Lazy refresh must not leave stale parents after appends between queries."""
    tree = OutputsMerkleTree()
    leaves: list[bytes] = []
    for i in range(40):
        tree.append(leaf(i))
        leaves.append(leaf(i))
        if i % 3 == 0:
            assert tree.root() == naive_root(leaves)
    assert tree.root() == naive_root(leaves)


def test_bad_arguments_are_rejected() -> None:
    tree = OutputsMerkleTree([leaf(0)])
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(IndexError):
        tree.siblings(1)
    with pytest.raises(ValueError, match="leaf_count"):
        tree.root_at(2)
    with pytest.raises(ValueError, match="63 siblings"):
        root_from_proof(leaf(0), 0, [])


def test_thousands_of_outputs_prove() -> None:
    tree = OutputsMerkleTree(leaf(i) for i in range(5000))
    root = tree.root()
    for i in (0, 2499, 4999):
        assert root_from_proof(tree.leaf(i), i, tree.siblings(i)) == root
    for i in range(100):
        tree.append(leaf(5000 + i))
        assert root_from_proof(tree.leaf(5000 + i), 5000 + i, tree.siblings(5000 + i)) == (
            tree.root()
        )
