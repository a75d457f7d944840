"""No input and no query stops the DApp (issue 9): a halted machine locks every balance.

Every report is bounded before it is emitted, and an output the guest API refuses rejects
the request instead of ending ``dapp.service.serve``; the state stays the one before the
input. Through the real input path: ``InProcessMachine`` for the rules, ``HostMachine`` (the
real ``python -m dapp`` process over HTTP) for the loop itself.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from deml_console.model_zoo import logistic_regression
from deml_protocol import inputs, queries
from deml_protocol.errors import MAX_DETAIL_CHARS, Rejected, ShardInvalid, cut_detail
from deml_protocol.uploads import upload_inputs
from devnet.guest_server import BadRequest, GuestServer
from devnet.host_machine import HostMachine
from devnet.in_process import InProcessMachine
from tests.machine_support import ALICE, BOB, Driver, error_of

ETHER = 10**18
#: A rejection report, whatever its detail: MAX_DETAIL_CHARS of the worst JSON escapes.
SMALL_REPORT = 12 * MAX_DETAIL_CHARS + 200


def long_names_npz(members: int = 60, name_bytes: int = 65_535) -> bytes:
    """An .npz-looking zip (under the 8 MiB shard limit) whose member names are as long as
    zip allows: a DApp quoting them in a rejection would build a report of ~20 MB."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(members):
            name = f"{index:03d}" + "\x01" * (name_bytes - 3)
            archive.writestr(zipfile.ZipInfo(name), b"")
    return buffer.getvalue()


def upload(net: Driver, sender: str, data: bytes) -> str:
    cid, payloads = upload_inputs(data)
    for payload in payloads:
        result = net.send(sender, payload, advance_time=1)
        assert result.status == "accepted", result.reports
    return cid


def ether_of(net: Driver, owner: str) -> int:
    return int(net.ask(queries.BALANCES, address=owner)["ether"])


def refuse(
    monkeypatch: pytest.MonkeyPatch, server: GuestServer, path: str, times: int = 1
) -> list[str]:
    """Make ``server`` answer 400 to the next ``times`` posts to ``path`` (like the real
    server refusing an output); returns the list of refusals made, for the test to check."""
    emit: Callable[[str, dict[str, Any]], dict[str, Any] | None] = server.emit
    refused: list[str] = []

    def refusing(where: str, body: dict[str, Any]) -> dict[str, Any] | None:
        if where == path and len(refused) < times:
            refused.append(where)
            raise BadRequest("refused by the test")
        return emit(where, body)

    monkeypatch.setattr(server, "emit", refusing)
    return refused


@pytest.fixture
def machine() -> Iterator[InProcessMachine]:
    with InProcessMachine() as running:
        yield running


@pytest.fixture
def net(machine: InProcessMachine) -> Driver:
    return Driver(machine)


def _evaluate_the_long_names_shard(net: Driver) -> None:
    data_cid = upload(net, BOB, long_names_npz())
    model_cid = upload(net, BOB, logistic_regression([1.0, -1.0]))
    result = net.send(BOB, inputs.EVALUATE.encode(model_cid, data_cid, "accuracy"))
    assert error_of(result) == "shard_invalid"
    (report,) = result.reports
    assert len(report) < SMALL_REPORT
    assert len(json.loads(report)["detail"]) <= MAX_DETAIL_CHARS


def test_a_shard_with_huge_member_names_gets_a_small_report(net: Driver) -> None:
    _evaluate_the_long_names_shard(net)
    assert net.deposit_ether(ALICE, ETHER).status == "accepted"
    assert ether_of(net, ALICE) == ETHER


def test_a_huge_detail_anywhere_is_cut_in_one_place(
    net: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a check quotes (here 41.6 MB of it), the report stays small."""
    from dapp import scoring

    def quoting(data: bytes, metric: object) -> None:
        raise ShardInvalid("members " + "\\x01" * 8_320_000)

    monkeypatch.setattr(scoring, "load_shard", quoting)
    data_cid = upload(net, BOB, b"any bytes")
    model_cid = upload(net, BOB, logistic_regression([1.0, -1.0]))
    result = net.send(BOB, inputs.EVALUATE.encode(model_cid, data_cid, "accuracy"))
    assert error_of(result) == "shard_invalid"
    (report,) = result.reports
    assert len(report) < SMALL_REPORT
    assert json.loads(report)["detail"].endswith("[... cut: 33,280,008 characters in all]")
    assert net.deposit_ether(ALICE, ETHER).status == "accepted"


def test_the_real_process_survives_the_huge_names_and_a_refused_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with HostMachine() as machine:
        net = Driver(machine)
        _evaluate_the_long_names_shard(net)
        assert machine.is_alive()
        # The guest API refuses the notice of a completing upload: the input is rejected with
        # a small report, its state is not kept, and the process serves the next input.
        refused = refuse(monkeypatch, machine.server, "/notice")
        cid, (begin, chunk) = upload_inputs(b"a small blob")
        assert net.send(BOB, begin).status == "accepted"
        result = net.send(BOB, chunk)
        assert refused == ["/notice"] and machine.is_alive()
        assert error_of(result) == "output_refused" and result.outputs == []
        assert len(result.reports) == 1 and len(result.reports[0]) < SMALL_REPORT
        assert net.ask(queries.BLOB, cid=cid)["status"] == "uploading"
        assert net.send(BOB, chunk).status == "accepted"  # the server takes it now
        assert net.ask(queries.BLOB, cid=cid)["status"] == "stored"
        assert net.deposit_ether(ALICE, ETHER).status == "accepted"
        assert ether_of(net, ALICE) == ETHER
        assert machine.is_alive()


def test_a_refused_output_rolls_the_state_back(
    net: Driver, machine: InProcessMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert net.deposit_ether(ALICE, 3 * ETHER).status == "accepted"
    before = net.digest()
    refused = refuse(monkeypatch, machine.server, "/voucher")
    result = net.send(ALICE, inputs.WITHDRAW_ETHER.encode(ETHER))
    assert refused == ["/voucher"]
    assert error_of(result) == "output_refused" and result.outputs == []
    assert len(result.reports) == 1 and len(result.reports[0]) < SMALL_REPORT
    assert net.digest() == before and ether_of(net, ALICE) == 3 * ETHER
    # The same input again, now that the server takes it: accepted, and the state moves.
    result = net.send(ALICE, inputs.WITHDRAW_ETHER.encode(ETHER))
    assert result.status == "accepted" and len(result.outputs) == 1
    assert ether_of(net, ALICE) == 2 * ETHER


def test_a_refused_report_rejects_the_deposit_but_not_the_next(
    net: Driver, machine: InProcessMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deposit whose call is rejected reports why; if that report is refused, the whole
    input is rejected (on a real node the portal's assets stay in the Application)."""
    refused = refuse(monkeypatch, machine.server, "/report")
    result = net.deposit_ether(ALICE, ETHER, inputs.WITHDRAW_ETHER.encode(5 * ETHER))
    assert refused == ["/report"] and error_of(result) == "output_refused"
    assert ether_of(net, ALICE) == 0
    assert net.deposit_ether(ALICE, ETHER).status == "accepted"
    assert ether_of(net, ALICE) == ETHER


def test_a_refused_inspect_report_rejects_the_query_only(
    net: Driver, machine: InProcessMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert net.deposit_ether(ALICE, ETHER).status == "accepted"
    refused = refuse(monkeypatch, machine.server, "/report")
    result = machine.inspect(queries.BALANCES.path(address=ALICE).encode())
    assert refused == ["/report"] and result.status == "rejected"
    assert json.loads(result.reports[-1])["error"] == "output_refused"
    assert ether_of(net, ALICE) == ETHER


@pytest.mark.parametrize(
    "payload, code",
    [
        (b"x" * (2 << 20), "payload_too_large"),
        (b"balances/" + b"0" * 2000, "payload_too_large"),
        (b"\xff" * 1000, "unknown_query"),
        (b"/" * 1024, "unknown_query"),
    ],
)
def test_huge_or_odd_queries_are_small_rejections(
    net: Driver, machine: InProcessMachine, payload: bytes, code: str
) -> None:
    result = machine.inspect(payload)
    assert result.status == "rejected" and len(result.reports) == 1
    assert len(result.reports[0]) < 1024
    assert Rejected.from_report(json.loads(result.reports[0])).code == code
    assert net.deposit_ether(ALICE, ETHER).status == "accepted"


def test_a_failing_view_is_a_rejected_inspect(
    net: Driver, machine: InProcessMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dapp import inspector

    def broken(state: Any, **params: object) -> Any:
        state.balances.clear()  # a view that writes: it only ever sees a copy
        return {"not json": object()}

    monkeypatch.setitem(inspector.VIEWS, queries.BALANCES, broken)
    assert net.deposit_ether(ALICE, ETHER).status == "accepted"
    result = machine.inspect(queries.BALANCES.path(address=ALICE).encode())
    assert result.status == "rejected"
    assert json.loads(result.reports[0])["error"] == "internal_error"
    monkeypatch.undo()
    assert ether_of(net, ALICE) == ETHER


def test_an_oversized_output_rejects_the_input(
    net: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output over the DApp's bound never reaches the guest API: the input is rejected."""
    from dapp import app

    monkeypatch.setattr(app, "MAX_OUTPUT_BYTES", 64)  # a BlobStored notice is longer
    before = net.digest()
    cid, (begin, chunk) = upload_inputs(b"a small blob")
    assert net.send(BOB, begin).status == "accepted"
    assert error_of(net.send(BOB, chunk)) == "output_too_large"
    assert net.ask(queries.BLOB, cid=cid)["status"] == "uploading"
    monkeypatch.undo()
    assert net.send(BOB, chunk).status == "accepted"
    assert net.ask(queries.BLOB, cid=cid)["status"] == "stored"
    assert net.digest() != before


def test_details_are_cut_once_with_a_marker() -> None:
    long = "é" * 100_000
    cut = cut_detail(long)
    assert len(cut) == MAX_DETAIL_CHARS and cut.endswith("[... cut: 100,000 characters in all]")
    assert cut_detail(cut) == cut and cut_detail("short") == "short"
    report = Rejected.from_report({"error": "shard_invalid", "detail": long}).as_report()
    assert report["detail"] == cut
