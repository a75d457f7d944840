"""The DApp's guest API client (dapp.rollup) against the guest API server, every endpoint."""

from __future__ import annotations

from typing import Any

import pytest

from dapp.rollup import RollupError, RollupServer
from deml_protocol.outputs import delegate_call_voucher_output, notice_output, voucher_output
from devnet.guest_server import GuestServer
from tests.test_guest_server import META, in_background

DEST = "0x" + "ee" * 20


def submit(server: GuestServer, payload: bytes) -> dict[str, Any]:
    return in_background(lambda: server.advance(META, payload, timeout=10))


def test_every_output_endpoint(server: GuestServer) -> None:
    rollup = RollupServer(server.url)
    pending = submit(server, b"\x01")
    request = rollup.finish("accept")
    assert request["data"]["payload"] == "0x01"
    assert rollup.notice(b"n") == 0
    assert rollup.voucher(DEST, 2**255, b"v") == 1  # value always 64 hex digits
    assert rollup.delegate_call_voucher(DEST, b"d") == 2
    rollup.report(b"r")
    second = submit(server, b"\x02")
    rollup.finish("accept")
    pending["thread"].join(5)
    result = pending["result"]
    assert [o.raw for o in result.outputs] == [
        notice_output(b"n"),
        voucher_output(DEST, 2**255, b"v"),
        delegate_call_voucher_output(DEST, b"d"),
    ]
    assert result.reports == [b"r"]
    rollup.exception(b"boom")  # the second request ends as an exception
    second["thread"].join(5)
    assert "boom" in str(second["error"])


def test_a_refused_call_is_a_rollup_error(server: GuestServer) -> None:
    rollup = RollupServer(server.url)
    pending = submit(server, b"")
    rollup.finish("accept")
    with pytest.raises(RollupError, match="address not valid"):
        rollup.voucher("0x1234", 1, b"")
    submit(server, b"")  # /finish answers with the next request, so queue one
    rollup.finish("reject")
    pending["thread"].join(5)
    assert pending["result"].status == "rejected"
