"""The spine end to end: the real DApp process behind the guest API server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eth_abi.abi import encode
from eth_hash.auto import keccak

from deml_protocol import inputs
from deml_protocol.limits import MAX_INPUT_PAYLOAD
from devnet.in_process import InProcessMachine
from tests.machine_support import ALICE, BOB, TOKEN, Driver, error_of

ETH = 10**18


@pytest.fixture
def dapp() -> Iterator[Driver]:
    with InProcessMachine() as machine:
        yield Driver(machine)


def voucher_bytes(destination: str, value: int, payload: bytes) -> bytes:
    """Built independently of the DApp: keccak of the signature + eth-abi."""
    selector = keccak(b"Voucher(address,uint256,bytes)")[:4]
    return selector + encode(["address", "uint256", "bytes"], [destination, value, payload])


def test_portal_deposits_credit_balances(dapp: Driver) -> None:
    assert dapp.deposit_ether(ALICE, 2 * ETH).status == "accepted"
    assert dapp.deposit_erc20(TOKEN, ALICE, 500).status == "accepted"
    assert dapp.deposit_erc20(TOKEN, ALICE, 250).status == "accepted"
    balances = dapp.query(f"balances/{ALICE}")
    assert balances == {"address": ALICE, "ether": str(2 * ETH), "erc20": {TOKEN: "750"}}
    assert dapp.query(f"balances/{BOB}")["ether"] == "0"


def test_deposit_payload_from_other_sender_is_rejected(dapp: Driver) -> None:
    forged = bytes.fromhex(ALICE[2:]) + (5 * ETH).to_bytes(32, "big")
    before = dapp.digest()
    result = dapp.send(BOB, forged)
    assert error_of(result) == "unknown_selector"
    assert dapp.query(f"balances/{ALICE}")["ether"] == "0"
    assert dapp.digest() == before


def test_withdrawals_emit_exact_vouchers(dapp: Driver) -> None:
    dapp.deposit_ether(ALICE, 2 * ETH)
    dapp.deposit_erc20(TOKEN, ALICE, 1000)
    ether = dapp.send(ALICE, inputs.WITHDRAW_ETHER.encode(ETH // 2))
    token = dapp.send(ALICE, inputs.WITHDRAW_ERC20.encode(TOKEN, 400))
    assert [o.raw for o in ether.outputs] == [voucher_bytes(ALICE, ETH // 2, b"")]
    transfer = keccak(b"transfer(address,uint256)")[:4] + encode(
        ["address", "uint256"], [ALICE, 400]
    )
    assert [o.raw for o in token.outputs] == [voucher_bytes(TOKEN, 0, transfer)]
    assert [o.index for o in ether.outputs + token.outputs] == [0, 1]  # one global index space
    assert dapp.query(f"balances/{ALICE}") == {
        "address": ALICE,
        "ether": str(2 * ETH - ETH // 2),
        "erc20": {TOKEN: "600"},
    }


def test_overdraft_is_rejected_and_changes_nothing(dapp: Driver) -> None:
    dapp.deposit_ether(ALICE, ETH)
    before = dapp.digest()
    result = dapp.send(ALICE, inputs.WITHDRAW_ETHER.encode(ETH + 1))
    assert error_of(result) == "insufficient_balance"
    assert result.outputs == []
    assert dapp.digest() == before
    overdraft = inputs.WITHDRAW_ERC20.encode(TOKEN, 1)
    assert error_of(dapp.send(BOB, overdraft)) == "insufficient_balance"
    assert dapp.digest() == before


def test_rejected_outputs_do_not_consume_output_indices(dapp: Driver) -> None:
    dapp.deposit_ether(ALICE, ETH)
    first = dapp.send(ALICE, inputs.WITHDRAW_ETHER.encode(1))
    dapp.send(ALICE, inputs.WITHDRAW_ETHER.encode(10 * ETH))
    second = dapp.send(ALICE, inputs.WITHDRAW_ETHER.encode(2))
    assert [first.outputs[0].index, second.outputs[0].index] == [0, 1]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"", "empty_payload"),
        (b"\x01\x02", "unknown_selector"),
        (b"\xde\xad\xbe\xef" + b"\x00" * 32, "unknown_selector"),
        (inputs.WITHDRAW_ETHER.encode(5)[:20], "bad_abi"),
        (inputs.WITHDRAW_ERC20.encode(TOKEN, 5)[:-1], "bad_abi"),
        (inputs.WITHDRAW_ETHER.selector + b"\x00" * (MAX_INPUT_PAYLOAD - 3), "payload_too_large"),
        (inputs.WITHDRAW_ETHER.encode(0), "bad_argument"),
        (inputs.WITHDRAW_ETHER.encode(5) + b"\x00", "bad_abi"),
    ],
    ids=[
        "empty",
        "short",
        "unknown",
        "truncated",
        "truncated_tail",
        "oversized",
        "zero",
        "trailing",
    ],
)
def test_malformed_inputs_are_named_and_harmless(dapp: Driver, payload: bytes, code: str) -> None:
    dapp.deposit_ether(ALICE, ETH)
    before = dapp.digest()
    assert error_of(dapp.send(ALICE, payload)) == code
    assert dapp.digest() == before
    after = dapp.send(ALICE, inputs.WITHDRAW_ETHER.encode(7))
    assert after.status == "accepted" and len(after.outputs) == 1


def test_deposit_with_failing_call_keeps_the_money(dapp: Driver) -> None:
    result = dapp.deposit_ether(ALICE, ETH, call=inputs.WITHDRAW_ETHER.encode(5 * ETH))
    assert result.status == "accepted"
    assert result.outputs == []
    assert "insufficient_balance" in result.reports[0].decode()
    assert dapp.query(f"balances/{ALICE}")["ether"] == str(ETH)


def test_deposit_with_call_runs_as_depositor(dapp: Driver) -> None:
    result = dapp.deposit_ether(ALICE, ETH, call=inputs.WITHDRAW_ETHER.encode(ETH // 4))
    assert [o.raw for o in result.outputs] == [voucher_bytes(ALICE, ETH // 4, b"")]
    assert dapp.query(f"balances/{ALICE}")["ether"] == str(ETH - ETH // 4)


def test_unknown_inspect_path_is_a_named_error(dapp: Driver) -> None:
    assert dapp.query("nonsense/1")["error"] == "unknown_query"
    assert dapp.query("balances/0x12")["error"] == "bad_argument"
    assert dapp.query("jobs/1/rounds/x")["error"] == "bad_argument"
    assert dapp.query("jobs/1/nonsense")["error"] == "unknown_query"
    assert dapp.query("jobs/1")["error"] == "no_such_job"


def test_inspect_reply_is_bounded_for_a_huge_unknown_path(dapp: Driver) -> None:
    """The detail quotes at most 200 characters of the path: a 1 MiB path cannot make a
    report the guest API refuses."""
    result = dapp.machine.inspect(b"x" * (1 << 20))
    assert result.status == "rejected" and len(b"".join(result.reports)) < 2_000
