"""The guest API server speaks machine-guest-tools 0.17's HTTP API (fact sheet §1).

Here the test plays the DApp over raw HTTP, so every status code and JSON shape is checked.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests

from deml_protocol.outputs import notice_output, voucher_output
from devnet.guest_server import GuestServer, MachineHalted, Result

META = {
    "chain_id": 31337,
    "app_contract": "0x" + "ab" * 20,
    "msg_sender": "0x" + "cd" * 20,
    "block_number": 7,
    "block_timestamp": 1_700_000_000,
    "prev_randao": "0x" + "11" * 32,
    "input_index": 0,
}
RCPT = "0x" + "ee" * 20


def in_background(fn: Any) -> dict[str, Any]:
    """Run ``fn`` (a blocking advance or inspect) in a thread. Tests join that thread with no
    timeout: it ends as soon as its request is finished, or when the server closes (close()
    completes every pending request), so a bounded join would only add a timing assumption
    that a loaded machine can break (the result would be missing). A hang is pytest-timeout's."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except MachineHalted as exc:  # the server closed under a request nobody finished
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    box["thread"] = thread
    return box


def post(server: GuestServer, path: str, body: Any) -> requests.Response:
    return requests.post(server.url + path, json=body, timeout=10)


def test_advance_request_shape_and_output_indices(server: GuestServer) -> None:
    pending = in_background(lambda: server.advance(META, b"\x01\x02"))
    request = post(server, "/finish", {"status": "accept"})
    assert request.status_code == 200
    assert request.json() == {
        "request_type": "advance_state",
        "data": {"metadata": META, "payload": "0x0102"},
    }
    notice = post(server, "/notice", {"payload": "0xbeef"})
    voucher = post(
        server, "/voucher", {"destination": RCPT, "value": "0x" + "00" * 31 + "05", "payload": "0x"}
    )
    report = post(server, "/report", {"payload": "0x6869"})
    assert (notice.status_code, notice.json()) == (201, {"index": 0})
    assert (voucher.status_code, voucher.json()) == (201, {"index": 1})
    assert (report.status_code, report.content) == (202, b"")
    second = in_background(lambda: server.advance(META | {"input_index": 1}, b""))
    assert post(server, "/finish", {"status": "accept"}).json()["data"]["payload"] == "0x"
    pending["thread"].join()
    result: Result = pending["result"]
    assert result.status == "accepted"
    assert [o.raw for o in result.outputs] == [
        notice_output(b"\xbe\xef"),
        voucher_output(RCPT, 5, b""),
    ]
    assert result.reports == [b"hi"]
    assert post(server, "/notice", {"payload": "0x01"}).json() == {"index": 2}  # global index
    server.close()
    second["thread"].join()


def test_reject_discards_outputs_and_rolls_back_the_index(server: GuestServer) -> None:
    first = in_background(lambda: server.advance(META, b""))
    post(server, "/finish", {"status": "accept"})
    post(server, "/notice", {"payload": "0x01"})
    post(server, "/report", {"payload": "0x02"})
    after = in_background(lambda: server.advance(META | {"input_index": 1}, b""))
    post(server, "/finish", {"status": "reject"})
    first["thread"].join()
    assert first["result"].status == "rejected"
    assert first["result"].outputs == [] and first["result"].reports == [b"\x02"]
    assert post(server, "/notice", {"payload": "0x01"}).json() == {"index": 0}
    server.close()
    after["thread"].join()


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/finish", {"status": "maybe"}, "status must be 'accept' or 'reject'"),
        ("/voucher", {"destination": "0x1234", "payload": "0x"}, "address not valid"),
        ("/voucher", {"destination": RCPT, "value": "0x1", "payload": "0x"}, "value"),
        ("/voucher", {"destination": RCPT, "value": "0x" + "0" * 66, "payload": "0x"}, "value"),
        ("/notice", {"payload": "0xzz"}, "hex"),
        ("/notice", {}, "payload"),
    ],
    ids=["finish-status", "short-address", "odd-value", "long-value", "bad-hex", "no-payload"],
)
def test_bad_calls_get_400_text(server: GuestServer, path: str, body: Any, message: str) -> None:
    pending = in_background(lambda: server.advance(META, b""))
    if path != "/finish":
        post(server, "/finish", {"status": "accept"})
    reply = post(server, path, body)
    assert reply.status_code == 400
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert message in reply.text
    server.close()
    pending["thread"].join()


def test_inspect_carries_only_the_payload_and_allows_no_outputs(server: GuestServer) -> None:
    pending = in_background(lambda: server.inspect(b"jobs"))
    assert post(server, "/finish", {"status": "accept"}).json() == {
        "request_type": "inspect_state",
        "data": {"payload": "0x" + b"jobs".hex()},
    }
    assert post(server, "/notice", {"payload": "0x01"}).status_code == 400
    post(server, "/report", {"payload": "0x7b7d"})
    done = in_background(lambda: server.advance(META, b""))
    post(server, "/finish", {"status": "accept"})
    pending["thread"].join()
    assert pending["result"].reports == [b"{}"]
    server.close()
    done["thread"].join()
