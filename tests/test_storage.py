"""Storage economics (``dapp/storage.py``) through the real input path: the DApp's room can be
filled, but not against the jobs in it, and what nothing needs is freed.

The attack of issue 9 item 3, small: four addresses fill the DApp's blob room with junk. Before
reservations, pins and collection, nobody could upload a model or shard again, committed
clients could not reveal, and their bonds went to the sponsor.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pytest
from eth_abi.abi import decode

from deml_console.datasets import shard_bytes
from deml_console.model_zoo import logistic_regression
from deml_protocol import inputs, queries
from deml_protocol.commitments import holdout_commitment, submission_commitment
from deml_protocol.notices import decode_notice
from deml_protocol.uploads import upload_inputs
from devnet.guest_server import Result
from devnet.in_process import InProcessMachine
from tests.machine_support import ALICE, BOB, Driver, error_of

CAROL = "0x" + "c0" * 20
ATTACKERS = ["0x" + f"{i:02x}" * 20 for i in (0xE1, 0xE2, 0xE3, 0xE4)]
WINDOW = 600
KEEP = 1000
ENV = {
    "DEML_TOTAL_QUOTA_BYTES": "200000",
    "DEML_SENDER_QUOTA_BYTES": "60000",
    "DEML_BLOB_KEEP_S": str(KEEP),
    "DEML_UPLOAD_TTL_S": "400",
}
BOND = 10
TRUTH = np.array([1.5, -2.0, 0.5, 1.0])


@pytest.fixture
def net() -> Iterator[Driver]:
    with InProcessMachine(env=ENV) as machine:
        yield Driver(machine)


def junk(seed: bytes, size: int) -> bytes:
    blocks = (hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


def shard(seed: int) -> bytes:
    X = np.random.default_rng(seed).normal(size=(16, 4)).astype(np.float32)
    return shard_bytes(X, (X @ TRUTH > 0).astype(np.int64))


def upload(net: Driver, sender: str, data: bytes) -> tuple[str, Result]:
    cid, payloads = upload_inputs(data)
    result = None
    for payload in payloads:
        result = net.send(sender, payload, advance_time=1)
        if result.status != "accepted":
            break
    assert result is not None
    return cid, result


def notices(result: Result) -> list[tuple[str, dict[str, object]]]:
    return [decode_notice(decode(["bytes"], o.raw[4:])[0]) for o in result.outputs]


def post_job(net: Driver, rounds: int) -> tuple[int, list[bytes]]:
    model_cid, stored = upload(net, ALICE, logistic_regression(np.zeros(4)))
    assert stored.status == "accepted"
    shards = [shard(r) for r in range(rounds)]
    spec = {
        "modelCid": model_cid,
        "recipe": "{}",
        "metric": "accuracy",
        "holdoutRows": 16,
        "holdoutCommitments": [
            holdout_commitment(upload_inputs(s)[0], bytes([r]) * 32) for r, s in enumerate(shards)
        ],
        "commitSeconds": WINDOW,
        "holdoutSeconds": WINDOW,
        "revealSeconds": WINDOW,
        "minGain": 1,
        "maxSubmissions": 8,
        "commitBond": BOND,
        "payout": "proportional",
        "aggregation": "fedavg",
        "trimPercent": 0,
    }
    result = net.deposit_ether(ALICE, 1000, inputs.CREATE_JOB.encode(**spec))
    assert result.status == "accepted" and not result.reports, result.reports
    return net.query("jobs")[-1]["id"], shards


def commit(net: Driver, client: str, job: int, round_index: int, model: bytes) -> Result:
    cid = upload_inputs(model)[0]
    commitment = submission_commitment(cid, client.encode()[:32], client, job, round_index)
    return net.send(client, inputs.COMMIT_SUBMISSION.encode(job, round_index, commitment))


def reveal(net: Driver, client: str, job: int, round_index: int, model: bytes) -> Result:
    cid, stored = upload(net, client, model)
    assert stored.status == "accepted", stored.reports
    salt = client.encode()[:32]
    return net.send(client, inputs.REVEAL_SUBMISSION.encode(job, round_index, cid, salt))


def fill_with_junk(net: Driver) -> list[str]:
    """The attackers upload junk, big pieces then smaller ones, until no byte is free."""
    stored = []
    for size in (20_000, 4_000, 800, 160, 32):
        for n, attacker in enumerate(ATTACKERS):
            for part in range(8):
                cid, result = upload(
                    net, attacker, junk(bytes([n, part]) + str(size).encode(), size)
                )
                if result.status != "accepted":
                    assert error_of(result) == "quota_exceeded"
                    net.send(attacker, inputs.ABORT_BLOB.encode(cid))
                    break
                stored.append(cid)
    return stored


def test_a_full_dapp_still_takes_committed_reveals_and_frees_junk(net: Driver) -> None:
    for who in (BOB, CAROL):
        net.deposit_ether(who, 100)
    job, shards = post_job(net, rounds=2)
    assert commit(net, BOB, job, 0, logistic_regression(TRUTH)).status == "accepted"
    room = net.ask(queries.STORAGE)
    assert room["reserved_bytes"] > 0  # the sponsor's shard and BOB's model are promised

    junk_cids = fill_with_junk(net)
    room = net.ask(queries.STORAGE)
    assert room["free_bytes"] < 32 and len(junk_cids) >= 8
    # No room to promise CAROL a model: her commit is refused and costs her nothing.
    assert error_of(commit(net, CAROL, job, 0, logistic_regression(TRUTH * 0.5))) == (
        "quota_exceeded"
    )
    assert net.query(f"balances/{CAROL}")["ether"] == "100"

    # The sponsor's shard and BOB's model still fit: their room was promised.
    net.send(ALICE, inputs.WITHDRAW_ETHER.encode(0), advance_time=WINDOW)  # commit window over
    shard_cid, stored = upload(net, ALICE, shards[0])
    assert stored.status == "accepted", stored.reports
    reveal_holdout = inputs.REVEAL_HOLDOUT.encode(job, 0, shard_cid, bytes([0]) * 32)
    assert net.send(ALICE, reveal_holdout).status == "accepted"
    assert reveal(net, BOB, job, 0, logistic_regression(TRUTH)).status == "accepted"

    # Junk is kept its keep time, then anyone collects it; what the job needs is pinned.
    graph = net.query(f"jobs/{job}")["initial_model_cid"]
    assert error_of(net.send(CAROL, inputs.COLLECT_BLOBS.encode(junk_cids[:1]))) == "blob_in_use"
    net.send(CAROL, inputs.WITHDRAW_ETHER.encode(0), advance_time=KEEP)
    assert error_of(net.send(CAROL, inputs.COLLECT_BLOBS.encode([graph]))) == "blob_in_use"
    assert error_of(net.send(CAROL, inputs.COLLECT_BLOBS.encode([shard_cid]))) == "blob_in_use"
    unpinned = [entry["cid"] for entry in net.ask(queries.UNPINNED)]
    assert set(junk_cids) <= set(unpinned) and graph not in unpinned
    collected = net.send(CAROL, inputs.COLLECT_BLOBS.encode(junk_cids))
    assert collected.status == "accepted"
    deleted = [fields["cid"] for name, fields in notices(collected) if name == "BlobDeleted"]
    assert deleted == junk_cids
    assert net.query(f"blobs/{junk_cids[0]}")["status"] == "absent"
    assert net.ask(queries.STORAGE)["free_bytes"] > 150_000

    # The round closes (shard and models unpinned), and there is room for CAROL again.
    close = net.send(CAROL, inputs.CLOSE_ROUND.encode(job, 0), advance_time=WINDOW)
    assert close.status == "accepted", close.reports
    assert net.query(f"balances/{BOB}")["ether"] == "100"  # the bond came back at the close
    assert commit(net, CAROL, job, 1, logistic_regression(TRUTH * 0.5)).status == "accepted"
    assert net.query(f"blobs/{shard_cid}")["pins"] == 0


def test_collect_is_all_or_nothing_and_bounded(net: Driver) -> None:
    first, _ = upload(net, BOB, junk(b"a", 1000))
    second, _ = upload(net, BOB, junk(b"b", 1000))
    net.send(BOB, inputs.WITHDRAW_ETHER.encode(0), advance_time=KEEP + 1)
    before = net.digest()
    twice = net.send(BOB, inputs.COLLECT_BLOBS.encode([first, second, first]))
    assert error_of(twice) == "blob_not_found" and net.digest() == before
    assert error_of(net.send(BOB, inputs.COLLECT_BLOBS.encode([]))) == "bad_argument"
    many = inputs.COLLECT_BLOBS.encode([first] * 65)
    assert error_of(net.send(BOB, many)) == "bad_argument"
    assert net.send(ALICE, inputs.COLLECT_BLOBS.encode([first, second])).status == "accepted"
    again, stored = upload(net, BOB, junk(b"a", 1000))  # a collected CID can be stored again
    assert again == first and stored.status == "accepted"


def test_an_aborted_upload_gives_its_promised_room_back(net: Driver) -> None:
    net.deposit_ether(BOB, 100)
    job, _ = post_job(net, rounds=1)
    model = logistic_regression(TRUTH)
    assert commit(net, BOB, job, 0, model).status == "accepted"
    promised = net.ask(queries.STORAGE)["reserved_bytes"]
    cid, payloads = upload_inputs(model)
    net.send(BOB, payloads[0])
    net.send(BOB, inputs.PUT_CHUNK.encode(cid, 0, model[:100]))
    assert net.ask(queries.STORAGE)["reserved_bytes"] == promised - 100  # paid from the promise
    net.send(BOB, inputs.ABORT_BLOB.encode(cid))
    assert net.ask(queries.STORAGE)["reserved_bytes"] == promised
    # Closing the round without a reveal ends every promise of the round.
    net.send(BOB, inputs.WITHDRAW_ETHER.encode(0), advance_time=3 * WINDOW)
    assert net.send(BOB, inputs.CLOSE_ROUND.encode(job, 0)).status == "accepted"
    assert net.ask(queries.STORAGE)["reserved_bytes"] == 0
    graph = net.query(f"jobs/{job}")["initial_model_cid"]
    assert net.query(f"blobs/{graph}")["pins"] == 0  # finished: kept, then collectable
