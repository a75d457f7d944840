"""The state's transactions: an undo journal, so an input costs what it writes."""

from __future__ import annotations

import pytest

from dapp.app import DApp
from dapp.context import Metadata
from dapp.records import Amount
from dapp.state import State
from deml_protocol import addresses, inputs

ALICE, BOB = "0x" + "a1" * 20, "0x" + "b0" * 20


def meta(index: int, sender: str = ALICE) -> Metadata:
    return Metadata(31337, "0x" + "ab" * 20, sender, index, 1_700_000_000 + index, "0x", index)


def test_rollback_undoes_writes_and_deletes_newest_first() -> None:
    state = State()
    state.counters["a"] = 1
    state.counters["gone"] = 7
    state.commit()
    before = state.copy()
    mark = state.savepoint()
    state.counters["a"] = 2
    state.counters["a"] = 3
    state.counters["b"] = 1
    del state.counters["gone"]
    assert state.counters.pop("b") == 1
    state.counters.setdefault("c", 5)
    state.rollback(mark)
    assert state == before and state.digest() == before.digest()
    assert not state.in_transaction


def test_nested_savepoint_rolls_back_only_its_part() -> None:
    state = State()
    state.counters["outer"] = 1
    inner = state.savepoint()
    state.counters["inner"] = 1
    state.counters["outer"] = 2
    state.rollback(inner)
    assert dict(state.counters) == {"outer": 1}
    state.commit()
    state.rollback()
    assert dict(state.counters) == {"outer": 1}  # committed writes stay


@pytest.mark.parametrize("write", ["update", "clear", "popitem", "ior"])
def test_bulk_writes_cannot_bypass_the_journal(write: str) -> None:
    table = State().counters
    with pytest.raises(TypeError, match="journaled"):
        if write == "ior":
            table |= {"x": 1}
        else:
            getattr(table, write)(*([{"x": 1}] if write == "update" else []))


def test_an_input_journals_its_writes_not_the_state() -> None:
    """The cost of an input does not grow with the state: a withdrawal among 100,000 other
    balances journals a handful of writes (bench/state_scaling.py times it)."""
    dapp = DApp()
    for holder in range(100_000):
        dapp.state.balances[(addresses.ETHER, "0x" + holder.to_bytes(20, "big").hex())] = Amount(1)
    dapp.state.balances[(addresses.ETHER, ALICE)] = Amount(10)
    dapp.state.commit()
    result = dapp.advance(meta(0), inputs.WITHDRAW_ETHER.encode(3))
    assert result.accepted and len(result.outputs) == 1
    assert 0 < len(dapp.state.journal.entries) <= 2
    dapp.commit()
    assert dapp.state.balances[(addresses.ETHER, ALICE)] == 7


def test_a_discarded_input_leaves_no_trace_and_the_next_must_wait_for_it() -> None:
    dapp = DApp()
    dapp.state.balances[(addresses.ETHER, ALICE)] = Amount(10)
    dapp.state.commit()
    before = dapp.state.digest()
    assert dapp.advance(meta(0), inputs.WITHDRAW_ETHER.encode(3)).accepted
    with pytest.raises(RuntimeError, match="neither committed nor discarded"):
        dapp.advance(meta(1), inputs.WITHDRAW_ETHER.encode(1))
    dapp.discard()  # as when the guest API refused one of its outputs
    assert dapp.state.digest() == before


def test_inspect_leaves_no_transaction_open() -> None:
    dapp = DApp()
    dapp.state.balances[(addresses.ETHER, ALICE)] = Amount(10)
    dapp.state.commit()
    ok, reports = dapp.inspect(f"balances/{ALICE}".encode())
    assert ok and b"10" in reports[0]
    assert not dapp.state.in_transaction
