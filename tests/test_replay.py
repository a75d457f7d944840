"""devnet.replay's comparison: every differing item of a replayed input, in output order."""

from __future__ import annotations

import dataclasses

from devnet.merkle import OutputsMerkleTree, output_hash
from devnet.replay import Claim, InputResult, check_claims, differences

STORED = InputResult("ACCEPTED", ((4, b"notice"), (5, b"voucher")), (b"report",))


def test_an_identical_result_has_no_difference() -> None:
    assert differences(7, STORED, dataclasses.replace(STORED)) == []


def test_every_differing_item_is_named_in_order() -> None:
    replayed = InputResult("REJECTED", ((4, b"notice"), (5, b"vouchex")), ())
    found = differences(7, STORED, replayed)
    assert [(d.input_index, d.item) for d in found] == [
        (7, "status"),
        (7, "output 5"),
        (7, "report 0"),
    ]
    assert (
        found[2].actual == "nothing"
        and str(found[0]) == "input 7, status: stored ACCEPTED, got REJECTED"
    )


def test_a_missing_or_extra_output_is_a_difference() -> None:
    extra = InputResult("ACCEPTED", (*STORED.outputs, (6, b"more")), STORED.reports)
    assert [d.item for d in differences(1, STORED, extra)] == ["output 6"]
    fewer = InputResult("ACCEPTED", STORED.outputs[:1], STORED.reports)
    assert [d.item for d in differences(1, STORED, fewer)] == ["output 5"]


def test_claims_are_checked_against_the_roots_of_the_replayed_outputs() -> None:
    tree = OutputsMerkleTree(output_hash(raw) for raw in (b"a", b"b", b"c"))
    blocks = [(10, 1), (15, 2), (25, 3)]  # (block of an input, outputs after it)
    good, bad = Claim(19, tree.root_at(2), "store"), Claim(29, tree.root_at(2), "store")
    checked = check_claims(tree, blocks, [good, bad])
    assert [(c.output_count, c.agrees) for c in checked] == [(2, True), (3, False)]
