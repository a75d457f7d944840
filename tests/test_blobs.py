"""Chunked blob uploads through the real DApp process (guest API server, no chain)."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import pytest
from eth_abi.abi import decode

from deml_protocol import inputs
from deml_protocol.cid import compute_cid
from deml_protocol.notices import decode_notice
from deml_protocol.uploads import CHUNK_BYTES, upload_inputs
from devnet.in_process import InProcessMachine
from tests.machine_support import ALICE, BOB, Driver, error_of

QUOTAS = {
    "DEML_MAX_BLOB_BYTES": str(600_000),
    "DEML_SENDER_QUOTA_BYTES": str(1_000_000),
    "DEML_TOTAL_QUOTA_BYTES": str(1_500_000),
    "DEML_UPLOAD_TTL_S": "3600",
}


def pseudo_random(size: int, seed: bytes = b"") -> bytes:
    blocks = (hashlib.sha256(seed + i.to_bytes(8, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


@pytest.fixture
def dapp() -> Iterator[Driver]:
    with InProcessMachine(env=QUOTAS) as machine:
        yield Driver(machine)


def upload(dapp: Driver, sender: str, data: bytes, version: int = 1) -> str:
    cid, payloads = upload_inputs(data, version=version)
    for payload in payloads:
        result = dapp.send(sender, payload)
        assert result.status == "accepted", result.reports
    return cid


@pytest.mark.parametrize("version", [0, 1])
def test_chunked_upload_stores_the_blob_under_its_cid(dapp: Driver, version: int) -> None:
    data = pseudo_random(500_000, bytes([version]))
    cid, payloads = upload_inputs(data, version=version)
    assert len(payloads) == 1 + -(-len(data) // CHUNK_BYTES)
    for payload in payloads[:-1]:
        assert dapp.send(ALICE, payload).outputs == []
        assert dapp.query(f"blobs/{cid}")["status"] == "uploading"
    last = dapp.send(ALICE, payloads[-1])
    assert cid == compute_cid(data, version=version)
    (notice,) = last.outputs
    name, fields = decode_notice(decode(["bytes"], notice.raw[4:])[0])
    assert name == "BlobStored"
    assert fields == {"cid": cid, "size": len(data), "uploader": ALICE}
    assert dapp.query(f"blobs/{cid}") == {
        "cid": cid,
        "status": "stored",
        "size": len(data),
        "uploader": ALICE,
        "input_index": len(payloads) - 1,
        "pins": 0,  # nothing uses it yet: kept a week (DEML_BLOB_KEEP_S), then collectable
        "keep_until_ts": dapp.timestamp + 7 * 24 * 3600,
    }


def test_corrupted_chunk_is_caught_and_nothing_is_stored(dapp: Driver) -> None:
    data = pseudo_random(200_000)
    cid, payloads = upload_inputs(data)
    corrupted = bytearray(data[CHUNK_BYTES : 2 * CHUNK_BYTES])
    corrupted[100] ^= 0xFF
    payloads[2] = inputs.PUT_CHUNK.encode(cid, CHUNK_BYTES, bytes(corrupted))
    for payload in payloads[:-1]:
        dapp.send(ALICE, payload)
    before = dapp.digest()
    assert error_of(dapp.send(ALICE, payloads[-1])) == "cid_mismatch"
    assert dapp.digest() == before
    assert dapp.query(f"blobs/{cid}")["status"] == "uploading"
    assert dapp.send(ALICE, inputs.ABORT_BLOB.encode(cid)).status == "accepted"
    assert dapp.query(f"blobs/{cid}")["status"] == "absent"
    assert upload(dapp, ALICE, data) == cid


def test_chunk_rules_have_named_errors(dapp: Driver) -> None:
    data = pseudo_random(150_000)
    cid, payloads = upload_inputs(data)
    chunk = data[:CHUNK_BYTES]
    cases = [
        (inputs.PUT_CHUNK.encode(cid, 0, chunk), "no_such_upload"),
        (inputs.BEGIN_BLOB.encode("not-a-cid", 10), "invalid_cid"),
        (inputs.BEGIN_BLOB.encode("bafyfoo", 10), "invalid_cid"),
        (inputs.BEGIN_BLOB.encode(compute_cid(b"x" * 700_000), 700_000), "blob_too_large"),
    ]
    for payload, code in cases:
        assert error_of(dapp.send(ALICE, payload)) == code
    dapp.send(ALICE, payloads[0])
    dapp.send(ALICE, payloads[1])
    before = dapp.digest()
    for sender, payload, code in [
        (ALICE, payloads[0], "upload_in_progress"),
        (ALICE, payloads[1], "duplicate_chunk"),
        (ALICE, payloads[3], "chunk_out_of_order"),
        (BOB, inputs.ABORT_BLOB.encode(cid), "no_such_upload"),
    ]:
        assert error_of(dapp.send(sender, payload)) == code
        assert dapp.digest() == before
    dapp.send(ALICE, payloads[2])
    dapp.send(ALICE, payloads[3])
    assert error_of(dapp.send(BOB, payloads[0])) == "blob_exists"


def test_chunk_past_the_announced_size_is_rejected(dapp: Driver) -> None:
    data = b"0123456789"
    cid, payloads = upload_inputs(data)
    dapp.send(ALICE, payloads[0])
    assert error_of(dapp.send(ALICE, inputs.PUT_CHUNK.encode(cid, 0, data + b"!"))) == (
        "chunk_exceeds_size"
    )
    assert dapp.send(ALICE, payloads[1]).status == "accepted"


def test_quotas_count_bytes_held_and_uploads_expire(dapp: Driver) -> None:
    carol = "0x" + "c0" * 20
    upload(dapp, ALICE, pseudo_random(500_000, b"1"))  # ALICE holds 500 kB of her 1 MB
    too_big = pseudo_random(500_001, b"x")
    assert error_of(dapp.send(ALICE, upload_inputs(too_big)[1][0])) == "quota_exceeded"
    cid2, payloads2 = upload_inputs(pseudo_random(400_000, b"2"))
    for payload in payloads2[:3]:  # begin + two chunks: only received bytes are held
        assert dapp.send(ALICE, payload).status == "accepted"
    assert dapp.query(f"uploads/{ALICE}")[0]["received"] == 2 * CHUNK_BYTES
    upload(dapp, BOB, pseudo_random(600_000, b"3"))  # the DApp now holds 1,229,024 bytes
    late = pseudo_random(300_000, b"4")
    assert error_of(dapp.send(carol, upload_inputs(late)[1][0])) == "quota_exceeded"  # total
    drop = inputs.DROP_UPLOAD.encode(ALICE, cid2)
    assert error_of(dapp.send(carol, drop)) == "blob_in_use"  # live: only ALICE may abort it
    dapp.send(BOB, inputs.WITHDRAW_ETHER.encode(1), advance_time=7200)  # two hours pass
    assert error_of(dapp.send(ALICE, payloads2[3])) == "upload_expired"
    assert dapp.send(carol, drop).status == "accepted"  # anyone drops an abandoned upload
    assert error_of(dapp.send(carol, drop)) == "no_such_upload"
    assert upload(dapp, carol, late)  # its bytes were freed
    assert dapp.query(f"uploads/{ALICE}") == []
    assert dapp.query(f"blobs/{cid2}")["status"] == "absent"


def test_upload_count_and_empty_chunks(dapp: Driver) -> None:
    dave = "0x" + "d0" * 20
    begins = [upload_inputs(bytes([i]) * 100)[1][0] for i in range(5)]
    for payload in begins[:4]:
        assert dapp.send(dave, payload).status == "accepted"
    assert error_of(dapp.send(dave, begins[4])) == "too_many_uploads"
    cid = upload_inputs(bytes([0]) * 100)[0]
    assert error_of(dapp.send(dave, inputs.PUT_CHUNK.encode(cid, 0, b""))) == "bad_argument"


def test_anyone_can_read_a_stored_blob_back(dapp: Driver) -> None:
    data = pseudo_random(590_000, b"read")
    cid = upload(dapp, ALICE, data)
    pages, offset = [], 0
    while offset is not None:
        page = dapp.query(f"blobs/{cid}/data/{offset}")
        pages.append(base64.b64decode(page["data_base64"]))
        offset = page["next_offset"]
    assert b"".join(pages) == data and len(pages) == 2
    assert dapp.query(f"blobs/{cid}/data/9999999")["error"] == "bad_argument"
    assert dapp.query(f"blobs/{compute_cid(b'x')}/data/0")["error"] == "blob_not_found"


def test_empty_blob(dapp: Driver) -> None:
    cid = upload(dapp, ALICE, b"")
    assert dapp.query(f"blobs/{cid}")["size"] == 0
