"""The Cartesi Rollups v2 outputs Merkle tree, as the host-mode node must rebuild it.

The contracts check ``LibMerkle32.merkleRootAfterReplacement(leaf, index, siblings)``
against a claimed root, and libcmt builds the tree the machine reports, so both must agree
bit for bit:

- height 63 (``CanonicalMachine.LOG2_MAX_OUTPUTS``), leaf = ``keccak256(output bytes)``;
- an empty leaf is 32 zero bytes and a parent is ``keccak256(left || right)``, so an empty
  subtree of height ``k`` hashes to the ``k``-th element of the zero-hash chain;
- the tree is cumulative over the application's life: output indices are global and the
  tree is never reset, so the root claimed for an epoch is the root over *every* output up
  to that epoch's last input.

Only the occupied part of the tree is stored (one list of nodes per level), so memory and
the cost of appending ``n`` leaves are both ``O(n + 63)``. Parents are recomputed lazily,
once per batch of appends, not once per append. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Final

from deml_protocol.abi import keccak256

#: ``CanonicalMachine.LOG2_MAX_OUTPUTS`` in @cartesi/rollups 2.2.0 (and libcmt's height).
TREE_HEIGHT: Final = 63
MAX_LEAVES: Final = 1 << TREE_HEIGHT
HASH_SIZE: Final = 32

__all__ = [
    "HASH_SIZE",
    "MAX_LEAVES",
    "TREE_HEIGHT",
    "OutputsMerkleTree",
    "output_hash",
    "root_from_proof",
    "zero_hashes",
]


@lru_cache(maxsize=1)
def zero_hashes() -> tuple[bytes, ...]:
    """``zero_hashes()[k]`` is the root of an empty subtree of height ``k`` (k = 0..63)."""
    chain = [bytes(HASH_SIZE)]
    for _ in range(TREE_HEIGHT):
        chain.append(keccak256(chain[-1] + chain[-1]))
    return tuple(chain)


def output_hash(output: bytes) -> bytes:
    """The leaf for one output: the hash of its full ABI encoding, selector included."""
    return keccak256(output)


def root_from_proof(leaf: bytes, index: int, siblings: Sequence[bytes]) -> bytes:
    """The root a proof leads to, exactly as ``LibMerkle32.merkleRootAfterReplacement``."""
    if len(siblings) != TREE_HEIGHT:
        raise ValueError(f"a proof needs {TREE_HEIGHT} siblings, got {len(siblings)}")
    _check_hash(leaf, "leaf")
    node = leaf
    for level, sibling in enumerate(siblings):
        _check_hash(sibling, f"sibling {level}")
        if (index >> level) & 1:
            node = keccak256(sibling + node)
        else:
            node = keccak256(node + sibling)
    return node


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")


class OutputsMerkleTree:
    """An append-only height-63 tree; roots and proofs for any prefix of its leaves.

    ``root_at(n)`` and ``siblings(i, leaf_count=n)`` answer for the tree as it was when it
    held ``n`` leaves, which is what a claim for a past epoch boundary commits to. Both cost
    ``O(63)`` once the levels are up to date.
    """

    __slots__ = ("_levels", "_dirty_from")

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        # _levels[k][j] is node j at height k; only nodes that cover a leaf are stored.
        self._levels: list[list[bytes]] = [[] for _ in range(TREE_HEIGHT + 1)]
        self._dirty_from: int | None = None
        self.extend(leaves)

    def __len__(self) -> int:
        return len(self._levels[0])

    def append(self, leaf: bytes) -> int:
        """Add one leaf hash; returns its index (the global output index)."""
        _check_hash(leaf, "leaf")
        index = len(self._levels[0])
        if index >= MAX_LEAVES:
            raise ValueError(f"the outputs tree is full ({MAX_LEAVES} leaves)")
        self._levels[0].append(bytes(leaf))
        if self._dirty_from is None:
            self._dirty_from = index
        return index

    def append_output(self, output: bytes) -> int:
        """Hash an output (its full ABI encoding) and add it; returns its index."""
        return self.append(output_hash(output))

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def leaf(self, index: int) -> bytes:
        self._check_index(index, len(self))
        return self._levels[0][index]

    def root(self) -> bytes:
        """The root over every leaf appended so far."""
        return self.root_at(len(self))

    def root_at(self, leaf_count: int) -> bytes:
        """The root of the tree holding only the first ``leaf_count`` leaves."""
        return self._frontier(leaf_count)[TREE_HEIGHT]

    def siblings(self, index: int, *, leaf_count: int | None = None) -> list[bytes]:
        """The 63 siblings of leaf ``index``, bottom-up, in the tree of ``leaf_count`` leaves.

        ``leaf_count`` defaults to every leaf. A proof must be built against the tree whose
        root was claimed, so pass the epoch's output count when newer outputs exist.
        """
        count = len(self) if leaf_count is None else leaf_count
        self._check_index(index, count)
        frontier = self._frontier(count)
        zeros = zero_hashes()
        result: list[bytes] = []
        for level in range(TREE_HEIGHT):
            sibling = (index >> level) ^ 1
            first_leaf = sibling << level
            if first_leaf >= count:
                result.append(zeros[level])
            elif first_leaf + (1 << level) <= count:
                result.append(self._levels[level][sibling])
            else:
                result.append(frontier[level])
        return result

    def _frontier(self, leaf_count: int) -> list[bytes]:
        """``frontier[k]``: node ``leaf_count >> k`` at height ``k``, counting only the
        first ``leaf_count`` leaves (the one node per level a prefix cuts through)."""
        if not 0 <= leaf_count <= len(self):
            raise ValueError(f"leaf_count {leaf_count} is outside 0..{len(self)}")
        self._refresh()
        zeros = zero_hashes()
        frontier = [zeros[0]]
        for level in range(TREE_HEIGHT):
            position = leaf_count >> level
            if position & 1:
                left = self._levels[level][position - 1]
                frontier.append(keccak256(left + frontier[level]))
            else:
                frontier.append(keccak256(frontier[level] + zeros[level]))
        return frontier

    def _refresh(self) -> None:
        """Recompute every parent whose subtree gained a leaf since the last refresh."""
        if self._dirty_from is None:
            return
        zeros = zero_hashes()
        start = self._dirty_from
        for level in range(TREE_HEIGHT):
            children = self._levels[level]
            parents = self._levels[level + 1]
            start >>= 1
            del parents[start:]
            for j in range(start, (len(children) + 1) // 2):
                right = children[2 * j + 1] if 2 * j + 1 < len(children) else zeros[level]
                parents.append(keccak256(children[2 * j] + right))
        self._dirty_from = None

    @staticmethod
    def _check_index(index: int, count: int) -> None:
        if not 0 <= index < count:
            raise IndexError(f"output index {index} is outside 0..{count - 1}")
