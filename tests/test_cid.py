"""CIDs must equal what ``ipfs add`` prints; references come from independent tools only.

``tests/fixtures/cid_vectors.json`` records, for every vector, which tools produced it
(ipfs-unixfs-importer, Debian's ipfs_cid, Kubo 0.22) and with which options. The CAR
fixtures hold the exact blocks the JavaScript importer wrote, so the bytes of our nodes are
checked too, not just their hashes.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deml_console.car import CarBlock, CarReader
from deml_protocol import cid as cid_module
from deml_protocol import multibase, unixfs
from deml_protocol.cid import (
    CHUNK_SIZE,
    DAG_PB,
    RAW,
    SHA2_256,
    Cid,
    CidBuilder,
    CidError,
    CidMismatch,
    DagPbError,
    block_cid,
    cid_of_file,
    compute_cid,
    decode_cid_bytes,
    iter_file,
    parse_cid,
    verify_block,
    verify_content,
)
from deml_protocol.multibase import MultibaseError, varint_decode, varint_encode
from deml_protocol.unixfs import UnixfsType, decode_pb_node, decode_unixfs

FIXTURES = Path(__file__).parent / "fixtures"
DOC: dict[str, Any] = json.loads((FIXTURES / "cid_vectors.json").read_text())
VECTORS: list[dict[str, Any]] = DOC["vectors"]
PATTERN = bytes(i % 251 for i in range(251))
PIECE = PATTERN * 4096  # 1,028,096 bytes: a whole number of patterns, not of chunks


def pattern(size: int) -> bytes:
    return (PATTERN * (size // 251 + 1))[:size]


def pattern_pieces(size: int) -> Iterator[memoryview]:
    """The pattern content in 1 MB pieces, so 50 MB never sits in memory at once."""
    view = memoryview(PIECE)
    while size > 0:
        yield view[: min(size, len(view))]
        size -= len(view)


def content_of(vector: dict[str, Any]) -> bytes:
    return b"Hello world" if vector["content"] == "hello_world" else pattern(vector["size"])


def car_blocks(profile: str) -> tuple[Cid, list[CarBlock]]:
    with gzip.open(FIXTURES / f"pattern_525288_{profile}.car.gz") as stream:
        reader = CarReader(stream)
        return reader.roots[0], list(reader)


SMALL = [v for v in VECTORS if v["size"] <= 2 * CHUNK_SIZE]
LARGE = [v for v in VECTORS if v["size"] > 2 * CHUNK_SIZE]


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("vector", SMALL, ids=[v["name"] for v in SMALL])
def test_small_vectors(vector: dict[str, Any], version: int) -> None:
    assert compute_cid(content_of(vector), version=version) == vector[f"v{version}"]


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("vector", LARGE, ids=[v["name"] for v in LARGE])
def test_large_vectors_streaming(vector: dict[str, Any], version: int) -> None:
    builder = CidBuilder(version)
    for piece in pattern_pieces(vector["size"]):
        builder.update(piece)
    assert builder.finish() == vector[f"v{version}"]


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    (vector,) = [v for v in VECTORS if v["size"] > 50_000_000]
    path = tmp_path_factory.mktemp("cid") / "big.bin"
    with path.open("wb") as handle:
        for piece in pattern_pieces(vector["size"]):
            handle.write(piece)
    return path, vector


@pytest.mark.parametrize("version", [0, 1])
def test_file_over_50_mb(big_file: tuple[Path, dict[str, Any]], version: int) -> None:
    path, vector = big_file
    assert path.stat().st_size > 50_000_000
    assert cid_of_file(path, version=version) == vector[f"v{version}"]


def test_single_chunk_v1_is_the_raw_leaf() -> None:
    data = pattern(CHUNK_SIZE)
    assert compute_cid(data) == str(block_cid(data, RAW, version=1))
    assert compute_cid(data).startswith("bafkrei")


@pytest.mark.parametrize("version", [0, 1])
def test_split_points_do_not_change_the_cid(version: int) -> None:
    data = pattern(3 * CHUNK_SIZE + 17)
    rng = random.Random(7)
    builder = CidBuilder(version)
    pos = 0
    while pos < len(data):
        step = rng.choice([1, 2, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 100_000])
        builder.update(data[pos : pos + step])
        pos += step
    assert builder.finish() == compute_cid(data, version=version)


@pytest.mark.parametrize("profile", ["v0", "v1"])
def test_blocks_are_byte_identical_to_the_js_importer(profile: str) -> None:
    root, expected = car_blocks(profile)
    emitted: list[CarBlock] = []
    builder = CidBuilder(int(profile[1]), on_block=lambda c, b: emitted.append(CarBlock(c, b)))
    builder.update(pattern(525_288))
    assert builder.finish() == str(root)
    assert emitted == expected  # same blocks, same order: leaves, then the root


@pytest.mark.parametrize("profile", ["v0", "v1"])
def test_decode_root_node_from_independent_encoder(profile: str) -> None:
    root, blocks = car_blocks(profile)
    node = decode_pb_node(blocks[-1].data)
    assert node.data is not None
    data = decode_unixfs(node.data)
    assert (data.type, data.filesize) == (UnixfsType.FILE, 525_288)
    assert data.blocksizes == (CHUNK_SIZE, CHUNK_SIZE, 1000)
    assert [decode_cid_bytes(link.cid)[0] for link in node.links] == [b.cid for b in blocks[:3]]
    assert all(link.name == "" for link in node.links)


@pytest.mark.parametrize("profile", ["v0", "v1"])
def test_iter_file_reassembles_and_verifies(profile: str) -> None:
    root, blocks = car_blocks(profile)
    store = {block.cid: block.data for block in blocks}
    assert b"".join(iter_file(root, store.__getitem__)) == pattern(525_288)
    leaf = blocks[1].cid
    store[leaf] = store[leaf][:-1] + b"X"
    with pytest.raises(CidMismatch, match="does not match"):
        b"".join(iter_file(root, store.__getitem__))


def test_iter_file_rejects_a_lying_filesize() -> None:
    leaf = b"abc"
    leaf_cid = block_cid(leaf)
    node = unixfs.encode_file_node([unixfs.PbLink(leaf_cid.to_bytes(), "", 3)], [4])
    root = block_cid(node, DAG_PB)
    blocks = {root: node, leaf_cid: leaf}
    with pytest.raises(DagPbError, match="declares 4 bytes"):
        b"".join(iter_file(root, blocks.__getitem__))


def test_iter_file_rejects_a_directory() -> None:
    node = b"\x0a\x02\x08\x01"  # PBNode{Data: UnixFS{Type: Directory}}
    root = block_cid(node, DAG_PB)
    with pytest.raises(DagPbError, match="directory, not a file"):
        list(iter_file(root, {root: node}.__getitem__))


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_parse_round_trip(vector: dict[str, Any]) -> None:
    for text in (vector["v0"], vector["v1"]):
        cid = parse_cid(f"  {text}\n")
        assert str(cid) == text
        assert decode_cid_bytes(cid.to_bytes()) == (cid, len(cid.to_bytes()))


def test_parse_fields_and_other_bases() -> None:
    cid = parse_cid("bafkreide5semuafsnds3ugrvm6fbwuyw2ijpj43gwjdxemstjkfozi37hq")
    assert (cid.version, cid.codec, cid.hash_code, cid.codec_name) == (1, RAW, SHA2_256, "raw")
    raw = cid.to_bytes()
    assert parse_cid("B" + multibase.b32_encode(raw).upper()) == cid
    assert parse_cid("z" + multibase.b58_encode(raw)) == cid
    assert parse_cid("f" + raw.hex()) == cid
    assert parse_cid("F" + raw.hex().upper()) == cid


def test_v0_to_v1_matches_debian_ipfs_cid() -> None:
    # `ipfs_cid` printed CIDv1 bafybeiabfiu2... for 'Hello world' (dag-pb DAG, base32).
    v0 = parse_cid("QmNRCQWfgze6AbBCaT1rkrkV5tJ2aP4oTNPb5JZcXYywve")
    assert str(v0.to_v1()) == "bafybeiabfiu2uipule2sro2maoufk2waokktnsbqp5gvaaod3y44ouft54"


def test_round_trip_property() -> None:
    rng = random.Random(1)
    for _ in range(200):
        digest = rng.randbytes(32)
        for version, codec in ((0, DAG_PB), (1, DAG_PB), (1, RAW)):
            cid = Cid(version, codec, SHA2_256, digest)
            assert parse_cid(str(cid)) == cid
    for value in (0, 1, 127, 128, 300, 2**63 - 1):
        assert varint_decode(varint_encode(value)) == (value, len(varint_encode(value)))


HEX_DIGEST = "11" * 32
BAD_CIDS = [
    ("", "empty CID"),
    ("   \n", "empty CID"),
    ("hello", "unsupported multibase prefix 'h'"),
    ("QmNRCQWfgze6AbBCaT1rkrkV5tJ2aP4oTNPb5JZcXYyw", "looks like a CIDv0"),
    ("QmNRCQWfgze6AbBCaT1rkrkV5tJ2aP4oTNPb5JZcXYyw0l", "base58btc alphabet"),
    ("bafy!!", "not in the base32 alphabet"),
    ("bafkreide5semuafsnds3ugrvm6fbwuyw2ijpj43gwjdxemstjkfozi37hr", "not canonical"),
    ("f01", "truncated"),
    ("f01ff", "truncated"),
    ("f01ffffffffffffffffff01", "longer than 9 bytes"),
    ("f018000", "not minimally encoded"),
    ("f02551220" + HEX_DIGEST, "unsupported CID version 2"),
    ("f00701220" + HEX_DIGEST, "unsupported CID version 0"),
    ("f01711220" + HEX_DIGEST, "unsupported codec 0x71 (dag-cbor)"),
    ("f01551340" + HEX_DIGEST * 2, "unsupported hash 0x13 (sha2-512)"),
    ("f015512100011", "truncated"),
    ("f01551210" + "11" * 16, "must be 32 bytes"),
    ("f01551220" + HEX_DIGEST + "00", "stray bytes"),
    ("z" + multibase.b58_encode(b"\x13\x20" + b"\x11" * 32), "unsupported CID version 19"),
    ("fxyz", "not valid base16"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CIDS)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(CidError, match=re.escape(message)) as info:
        parse_cid(text)
    assert isinstance(info.value, ValueError)


def test_cid_rejects_impossible_combinations() -> None:
    with pytest.raises(CidError, match="CIDv0 is always dag-pb"):
        Cid(0, RAW, SHA2_256, b"\0" * 32)
    with pytest.raises(CidError, match="version must be 0 or 1"):
        CidBuilder(2)


def test_verify_block_and_content() -> None:
    cid = compute_cid(b"Hello world")
    verify_block(cid, b"Hello world")
    verify_content(cid, b"Hello world")
    with pytest.raises(CidMismatch, match="does not match"):
        verify_block(cid, b"Hello world!")
    with pytest.raises(CidMismatch, match="different profile"):
        verify_content(cid, b"Hello world!")
    v0 = parse_cid(compute_cid(pattern(CHUNK_SIZE + 1), version=0))
    verify_content(v0.to_v1(), pattern(CHUNK_SIZE + 1))  # the bafybei twin of a Qm id


def test_builder_is_single_use() -> None:
    builder = CidBuilder()
    builder.finish()
    with pytest.raises(CidError, match="after finish"):
        builder.update(b"x")
    with pytest.raises(CidError, match="twice"):
        builder.finish()


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (b"\x0a\x05\x08", "runs past the end"),
        (b"\x0b", "unsupported wire type 3"),
        (b"\x1a\x00", "unexpected or repeated field 3"),
        (b"\x12\x02\x12\x00", "link has no Hash"),
        (b"\x08\x01", "should be length-delimited"),
    ],
)
def test_dag_pb_decode_errors(block: bytes, message: str) -> None:
    with pytest.raises(DagPbError, match=message):
        decode_pb_node(block)


def test_unixfs_decode_errors() -> None:
    with pytest.raises(DagPbError, match="missing or unknown Type"):
        decode_unixfs(b"\x18\x01")
    with pytest.raises(DagPbError, match="unknown field 9"):
        decode_unixfs(b"\x08\x02\x48\x01")


def test_varint_errors_are_multibase_errors() -> None:
    with pytest.raises(MultibaseError, match="negative"):
        varint_encode(-1)


@pytest.mark.parametrize("module", [cid_module, multibase, unixfs])
def test_public_names_exist(module: Any) -> None:
    assert len(set(module.__all__)) == len(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)
