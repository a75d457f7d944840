"""Blob stores: one contract suite for every backend, plus each backend's own failure modes.

**The Kubo and gateway tests talk to a stand-in, not to a real Kubo.** No Kubo can run
here: Debian has no kubo package, the npm ``kubo``/``go-ipfs`` packages download the binary
at install time (this machine reaches package registries only), the Go module needs a newer
toolchain than Debian ships, and the Kubo inside PyPI ``kubo-python`` is a library without
the RPC or gateway HTTP servers. So :class:`StandIn` below implements, over real HTTP on
127.0.0.1, the parts of the Kubo RPC API (``POST /api/v0/add|cat|block/get|block/stat``,
JSON errors, 405 for GET) and of the trustless gateway spec (``/ipfs/<cid>?format=raw|car``
with ``Accept: application/vnd.ipld.raw|car``, ``HEAD``, 404) that the stores use.

What it serves comes from an independent encoder wherever possible: the CAR fixtures were
written by ipfs-unixfs-importer + @ipld/car (see ``fixtures/cid_vectors.json``) and are
served byte for byte. Only ``add`` has to import new bytes, and it uses DeML's own
``CidBuilder`` (the only UnixFS importer available in-process); the CIDs ``put`` returns are
still checked against the independent fixture roots.
"""

from __future__ import annotations

import gzip
import io
import json
import threading
from collections.abc import Iterator
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from deml_console.car import CarBlock, CarError, CarReader, write_car
from deml_console.stores import (
    BadResponse,
    BadStoreSpec,
    BlobNotFound,
    BlobStore,
    GatewayStore,
    IntegrityError,
    KuboStore,
    LocalStore,
    ReadOnlyStore,
    StoreUnavailable,
    open_store,
)
from deml_protocol.cid import Cid, CidBuilder, CidError, decode_cid_bytes, parse_cid
from deml_protocol.unixfs import decode_pb_node, decode_unixfs

FIXTURES = Path(__file__).parent / "fixtures"
CARS: list[dict[str, Any]] = json.loads((FIXTURES / "cid_vectors.json").read_text())["cars"]
PATTERN = bytes(i % 251 for i in range(251))


def pattern(size: int) -> bytes:
    return (PATTERN * (size // 251 + 1))[:size]


def _flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1]) if data else b"!"


class StandIn:
    """In-memory IPFS node state behind the stand-in HTTP server; tests poke at it."""

    def __init__(self) -> None:
        self.blocks: dict[str, bytes] = {}
        self.cars: dict[str, bytes] = {}
        self.tampered: set[str] = set()  # CIDs whose block / file / CAR is served corrupted
        self.slow: set[str] = set()  # CIDs whose requests hang until `released` (or 10 s)
        self.released = threading.Event()
        self.omitted: set[str] = set()  # CIDs left out of CAR responses
        self.ignore_raw_leaves = False  # simulate a node with other Import settings
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, str]]] = []
        for car in CARS:
            raw = gzip.decompress((FIXTURES / car["file"]).read_bytes())
            self.cars[car["root"]] = raw
            with gzip.open(FIXTURES / car["file"]) as stream:
                for block in CarReader(stream):
                    self.blocks[str(block.cid)] = block.data

    def add(self, data: bytes, version: int) -> str:
        def keep(cid: Cid, block: bytes) -> None:
            self.blocks[str(cid)] = block

        builder = CidBuilder(version, on_block=keep)
        builder.update(data)
        root: str = builder.finish()
        return root

    def dfs(self, cid: Cid) -> Iterator[CarBlock]:
        block = self.blocks[str(cid)]
        yield CarBlock(cid, _flip(block) if str(cid) in self.tampered else block)
        if cid.codec == 0x70:
            for link in decode_pb_node(block).links:
                yield from self.dfs(decode_cid_bytes(link.cid)[0])

    def file(self, cid: Cid) -> bytes:
        out = b""
        for block in self.dfs(cid):
            node = decode_pb_node(block.data) if block.cid.codec == 0x70 else None
            out += block.data if node is None else _unixfs_data(node.data)
        return _flip(out) if str(cid) in self.tampered else out

    def car(self, cid: Cid) -> bytes:
        raw = self.cars.get(str(cid))
        if raw is None or self.tampered or self.omitted:
            kept = (block for block in self.dfs(cid) if str(block.cid) not in self.omitted)
            raw = write_car([cid], kept)
        return raw


def _unixfs_data(data: bytes | None) -> bytes:
    content: bytes = decode_unixfs(data or b"").data
    return content


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _kubo_error(self, message: str) -> None:
        body = json.dumps({"Message": message, "Code": 0, "Type": "error"}).encode()
        self._send(500, body, "application/json")

    def _route(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        state = self.server.state
        state.requests.append((self.command, url.path, query, dict(self.headers.items())))
        if str(query.get("arg", [""])[0]) in state.slow or url.path.split("/")[-1] in state.slow:
            state.released.wait(10)  # past the client's timeout; the fixture releases it
        if url.path.startswith("/api/v0/"):
            if self.command != "POST":
                self._send(405, b"405 - Method Not Allowed", "text/plain")
                return
            self._kubo(url.path[len("/api/v0/") :], query)
        elif url.path.startswith("/ipfs/"):
            self._gateway(url.path[len("/ipfs/") :], query)
        else:
            self._send(404, b"404 page not found", "text/plain")

    do_GET = do_POST = do_HEAD = _route

    def _kubo(self, command: str, query: dict[str, list[str]]) -> None:
        state = self.server.state
        if command == "add":
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            message = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body
            )
            (part,) = list(message.iter_parts())
            data = part.get_payload(decode=True)
            assert isinstance(data, bytes)
            version = int(query["cid-version"][0])
            if version == 1 and state.ignore_raw_leaves:
                version = 0  # a node that ignores raw-leaves yields another DAG
            cid = state.add(data, version)
            cid = str(parse_cid(cid).to_v1()) if query["cid-version"] == ["1"] else cid
            reply = {"Name": cid, "Hash": cid, "Size": str(len(data))}
            self._send(200, json.dumps(reply).encode() + b"\n", "application/json")
            return
        try:
            arg = parse_cid(query["arg"][0])
        except (KeyError, CidError) as exc:
            self._kubo_error(f"invalid path: {exc}")
            return
        self._kubo_read(command, arg)

    def _kubo_read(self, command: str, cid: Cid) -> None:
        state = self.server.state
        if str(cid) not in state.blocks:
            self._kubo_error(f"block was not found locally (offline): ipld: could not find {cid}")
        elif command == "cat":
            self._send(200, state.file(cid), "text/plain")
        elif command == "block/get":
            block = state.blocks[str(cid)]
            self._send(200, _flip(block) if str(cid) in state.tampered else block)
        elif command == "block/stat":
            stat = {"Key": str(cid), "Size": len(state.blocks[str(cid)])}
            self._send(200, json.dumps(stat).encode(), "application/json")
        else:
            self._send(404, b"404 page not found", "text/plain")

    def _gateway(self, text: str, query: dict[str, list[str]]) -> None:
        state = self.server.state
        try:
            cid = parse_cid(text)
        except CidError:
            self._send(400, b"invalid cid", "text/plain")
            return
        fmt = query.get("format", [""])[0]
        if str(cid) not in state.blocks:
            self._send(404, f"{cid}: not found".encode(), "text/plain")
        elif fmt == "raw" and "application/vnd.ipld.raw" in self.headers.get("Accept", ""):
            block = state.blocks[str(cid)]
            body = _flip(block) if str(cid) in state.tampered else block
            self._send(200, body, "application/vnd.ipld.raw")
        elif fmt == "car" and "application/vnd.ipld.car" in self.headers.get("Accept", ""):
            self._send(200, state.car(cid), "application/vnd.ipld.car; version=1")
        else:
            self._send(406, b"only trustless responses are served", "text/plain")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    state: StandIn


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One server for the module (port 0); each test gets fresh state through ``node``."""
    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
def node(server: Server) -> Iterator[tuple[StandIn, str]]:
    server.state = StandIn()
    yield server.state, f"http://127.0.0.1:{server.server_address[1]}"
    server.state.released.set()  # let any request still hanging finish


# ---------------------------------------------------------------- one contract, every store

BACKENDS = ["local", "local-v0", "kubo", "kubo-v0", "gateway-raw", "gateway-car"]


@pytest.fixture(params=BACKENDS)
def store_and_writer(
    request: pytest.FixtureRequest, node: tuple[StandIn, str], tmp_path: Path
) -> tuple[BlobStore, BlobStore]:
    """``(store under test, store that can write into it)``; a gateway is fed through Kubo."""
    _, url = node
    kind: str = request.param
    version = 0 if kind.endswith("v0") else 1
    if kind.startswith("local"):
        local = LocalStore(tmp_path / "blobs", cid_version=version)
        return local, local
    kubo = KuboStore(url, cid_version=version, timeout_s=5)
    if kind.startswith("kubo"):
        return kubo, kubo
    return GatewayStore(url, mode="car" if kind.endswith("car") else "raw", timeout_s=5), kubo


@pytest.mark.parametrize("size", [0, 11, 262_144, 525_288])
def test_contract_round_trip(store_and_writer: tuple[BlobStore, BlobStore], size: int) -> None:
    store, writer = store_and_writer
    data = pattern(size)
    cid = writer.put(data)
    assert store.has(cid)
    assert store.get(cid) == data
    assert store.get(parse_cid(cid)) == data


def test_contract_put_returns_independent_cids(
    store_and_writer: tuple[BlobStore, BlobStore],
) -> None:
    _, writer = store_and_writer
    expected = {c["profile"]: c["root"] for c in CARS}
    cid = writer.put(pattern(525_288))
    assert cid == expected["v0" if cid.startswith("Qm") else "v1"]


def test_contract_missing_blob(store_and_writer: tuple[BlobStore, BlobStore]) -> None:
    store, _ = store_and_writer
    absent = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    assert not store.has(absent)
    with pytest.raises(BlobNotFound):
        store.get(absent)


def test_contract_bad_cid_is_the_callers_error(
    store_and_writer: tuple[BlobStore, BlobStore],
) -> None:
    store, _ = store_and_writer
    with pytest.raises(CidError):
        store.get("not-a-cid")


# ---------------------------------------------------------------- LocalStore


def test_local_store_names_files_by_cid_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(b"Hello world")
    assert cid == "bafkreide5semuafsnds3ugrvm6fbwuyw2ijpj43gwjdxemstjkfozi37hq"
    assert sorted(p.name for p in tmp_path.iterdir()) == [cid]
    assert store.put(b"Hello world") == cid  # idempotent


def test_local_store_detects_a_corrupted_file(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    cid = store.put(pattern(300_000))
    (tmp_path / cid).write_bytes(_flip(pattern(300_000)))
    with pytest.raises(IntegrityError, match="delete it and fetch the blob again"):
        store.get(cid)


def test_local_store_finds_the_v1_twin_of_a_v0_blob(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, cid_version=0)
    cid = store.put(pattern(300_000))
    twin = parse_cid(cid).to_v1()
    assert store.has(twin)
    assert store.get(twin) == pattern(300_000)


def test_local_store_missing_blob_message(tmp_path: Path) -> None:
    with pytest.raises(BlobNotFound, match="put it first"):
        LocalStore(tmp_path / "nowhere").get("QmNRCQWfgze6AbBCaT1rkrkV5tJ2aP4oTNPb5JZcXYywve")


# ---------------------------------------------------------------- Kubo RPC


def test_kubo_add_sends_the_profile_and_only_posts(node: tuple[StandIn, str]) -> None:
    state, url = node
    KuboStore(url).put(b"Hello world")
    KuboStore(url, cid_version=0).put(b"Hello world")
    (_, _, v1, _), (_, _, v0, _) = [r for r in state.requests if r[1] == "/api/v0/add"]
    assert v1["cid-version"] == ["1"] and v1["raw-leaves"] == ["true"]
    assert v0["cid-version"] == ["0"] and v0["raw-leaves"] == ["false"]
    for params in (v0, v1):
        assert params["chunker"] == ["size-262144"] and params["pin"] == ["true"]
    KuboStore(url).has(parse_cid(CARS[0]["root"]))
    (_, _, stat, _) = [r for r in state.requests if r[1] == "/api/v0/block/stat"][0]
    assert stat["offline"] == ["true"]  # `has` must not start a network search
    assert {method for method, *_ in state.requests} == {"POST"}


def test_kubo_with_other_import_settings_is_refused(node: tuple[StandIn, str]) -> None:
    state, url = node
    state.ignore_raw_leaves = True
    with pytest.raises(IntegrityError, match="check the node's Import settings"):
        KuboStore(url).put(pattern(300_000))


def test_kubo_reads_other_profiles_block_by_block(node: tuple[StandIn, str]) -> None:
    state, url = node
    (other,) = [c for c in CARS if c["profile"] == "other"]
    assert KuboStore(url).get(other["root"]) == pattern(other["size"])
    assert any(r[1] == "/api/v0/block/get" for r in state.requests)


@pytest.mark.parametrize("target", ["root", "leaf"])
def test_kubo_tampered_data_is_caught(node: tuple[StandIn, str], target: str) -> None:
    state, url = node
    (other,) = [c for c in CARS if c["profile"] == "other"]
    root = parse_cid(other["root"])
    leaf = decode_cid_bytes(decode_pb_node(state.blocks[str(root)]).links[1].cid)[0]
    state.tampered |= {other["root"], str(root if target == "root" else leaf)}
    with pytest.raises(IntegrityError, match="does not match"):
        KuboStore(url).get(root)


def test_kubo_tampered_cat_of_our_profile_falls_back_and_is_caught(
    node: tuple[StandIn, str],
) -> None:
    state, url = node
    store = KuboStore(url)
    cid = store.put(pattern(600_000))
    state.tampered.add(cid)  # cat and the root block both lie
    with pytest.raises(IntegrityError):
        store.get(cid)


def test_kubo_errors_name_the_problem(node: tuple[StandIn, str]) -> None:
    state, url = node
    with pytest.raises(BadResponse, match="give the Kubo RPC address"):
        KuboStore(url + "/nothing-here").put(b"x")
    with pytest.raises(StoreUnavailable, match="cannot reach Kubo RPC"):
        KuboStore("http://127.0.0.1:9", timeout_s=2).get(parse_cid(CARS[0]["root"]))
    cid = KuboStore(url).put(b"slow")
    state.slow.add(cid)
    with pytest.raises(StoreUnavailable, match="did not answer /api/v0/cat within 0.3 s"):
        KuboStore(url, timeout_s=0.3).get(cid)


# ---------------------------------------------------------------- trustless gateway


@pytest.mark.parametrize("mode", ["raw", "car"])
def test_gateway_reads_independent_dags_and_asks_for_trustless_types(
    node: tuple[StandIn, str], mode: str
) -> None:
    state, url = node
    store = GatewayStore(url, mode="car" if mode == "car" else "raw")
    for car in CARS:
        assert store.get(car["root"]) == pattern(car["size"])
    gets = [r for r in state.requests if r[0] == "GET"]
    assert all(query["format"] == [mode] for _, _, query, _ in gets)
    assert all(f"application/vnd.ipld.{mode}" in headers["Accept"] for *_, headers in gets)


@pytest.mark.parametrize("mode", ["raw", "car"])
@pytest.mark.parametrize("target", [0, 1, 3])  # a leaf, another leaf, the root
def test_gateway_tampered_block_is_caught(
    node: tuple[StandIn, str], mode: str, target: int
) -> None:
    state, url = node
    (car,) = [c for c in CARS if c["profile"] == "v1"]
    blocks = list(CarReader(gzip.open(FIXTURES / car["file"])))
    state.tampered.add(str(blocks[target].cid))
    store = GatewayStore(url, mode="car" if mode == "car" else "raw")
    with pytest.raises(IntegrityError, match="does not match"):
        store.get(car["root"])


def test_gateway_car_missing_a_block(node: tuple[StandIn, str]) -> None:
    state, url = node
    (car,) = [c for c in CARS if c["profile"] == "v0"]
    root = parse_cid(car["root"])
    state.omitted.add(
        str(decode_cid_bytes(decode_pb_node(state.blocks[str(root)]).links[2].cid)[0])
    )
    with pytest.raises(BadResponse, match="lacks a block"):
        GatewayStore(url, mode="car").get(root)


def test_gateway_is_read_only(node: tuple[StandIn, str]) -> None:
    with pytest.raises(ReadOnlyStore, match="cannot take uploads"):
        GatewayStore(node[1]).put(b"x")


def test_gateway_timeout(node: tuple[StandIn, str]) -> None:
    state, url = node
    (car,) = [c for c in CARS if c["profile"] == "v0"]
    state.slow.add(car["root"])
    with pytest.raises(StoreUnavailable, match="did not answer"):
        GatewayStore(url, timeout_s=0.3).get(car["root"])


# ---------------------------------------------------------------- CAR reader


def test_car_rejects_v2_and_truncation() -> None:
    v2_pragma = bytes.fromhex("0aa16776657273696f6e02")
    with pytest.raises(CarError, match="CARv2"):
        CarReader(_stream(v2_pragma))
    whole = gzip.decompress((FIXTURES / CARS[0]["file"]).read_bytes())
    with pytest.raises(CarError, match="ends inside"):
        list(CarReader(_stream(whole[:-10])))


def test_car_round_trip_and_verification() -> None:
    block = CarBlock(
        parse_cid("bafkreide5semuafsnds3ugrvm6fbwuyw2ijpj43gwjdxemstjkfozi37hq"), b"Hello world"
    )
    reader = CarReader(_stream(write_car([block.cid], [block])))
    assert reader.roots == (block.cid,) and list(reader) == [block]
    bad = CarBlock(block.cid, b"Hello World")
    with pytest.raises(CidError, match="does not match"):
        list(CarReader(_stream(write_car([block.cid], [bad]))))


def _stream(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


# ---------------------------------------------------------------- open_store


def test_open_store_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEML_BLOB_DIR", str(tmp_path))
    assert isinstance(open_store(None), LocalStore)
    assert isinstance(open_store(str(tmp_path)), LocalStore)
    assert isinstance(open_store("kubo:http://127.0.0.1:5001"), KuboStore)
    gateway = open_store("gateway+car:https://gw.example")
    assert isinstance(gateway, GatewayStore) and gateway.mode == "car"
    with pytest.raises(BadStoreSpec, match="ambiguous"):
        open_store("http://127.0.0.1:5001")
