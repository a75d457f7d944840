"""Off-chain blob stores: put bytes, get them back by CID, never trust what comes back.

Every store has the same three methods (:class:`BlobStore`). Every byte a store returns has
been checked against the CID asked for: a whole blob is re-imported with the DeML profiles,
and anything fetched block by block is hashed before it is parsed. Pick a store with
:func:`open_store` (``docs/cids.md`` explains when to use which).

Errors (all carry a stable ``code`` the console prints)::

    StoreError                      store_error
    ├── BlobNotFound (LookupError)  store_blob_not_found the store does not have it
    ├── IntegrityError              blob_integrity      bytes do not match the CID
    ├── BadResponse                 store_bad_response  the service answered nonsense
    ├── StoreUnavailable            store_unavailable   cannot reach it / it timed out
    │   (ConnectionError)
    ├── ReadOnlyStore               store_read_only     a gateway cannot take uploads
    └── BadStoreSpec (ValueError)   bad_store_spec      open_store() cannot parse the spec

A malformed CID given by the caller is a :class:`deml_protocol.cid.CidError`, not a
``StoreError``: it is the caller's mistake, not the store's.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Protocol

import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from deml_protocol.cid import (
    CHUNK_SIZE,
    DAG_PB,
    Cid,
    CidError,
    CidMismatch,
    as_cid,
    compute_cid,
    iter_file,
    verify_content,
)

from .car import CarError, CarReader

__all__ = [
    "BadResponse",
    "BadStoreSpec",
    "BlobNotFound",
    "BlobStore",
    "GatewayStore",
    "IntegrityError",
    "KuboStore",
    "LocalStore",
    "ReadOnlyStore",
    "StoreError",
    "StoreUnavailable",
    "default_blob_dir",
    "open_store",
]

#: Bitswap refuses blocks over 2 MiB, so a larger "block" is a broken or hostile server.
MAX_BLOCK_BYTES: Final = 2 << 20
DEFAULT_TIMEOUT_S: Final = 60.0
_RAW_TYPE: Final = "application/vnd.ipld.raw"
_CAR_TYPE: Final = "application/vnd.ipld.car;version=1;order=dfs;dups=y"


class StoreError(Exception):
    code: ClassVar[str] = "store_error"


class BlobNotFound(StoreError, LookupError):
    code: ClassVar[str] = "store_blob_not_found"


class IntegrityError(StoreError):
    code: ClassVar[str] = "blob_integrity"


class BadResponse(StoreError):
    code: ClassVar[str] = "store_bad_response"


class StoreUnavailable(StoreError, ConnectionError):
    code: ClassVar[str] = "store_unavailable"


class ReadOnlyStore(StoreError):
    code: ClassVar[str] = "store_read_only"


class BadStoreSpec(StoreError, ValueError):
    code: ClassVar[str] = "bad_store_spec"


class BlobStore(Protocol):
    """Content-addressed blob storage; ``put`` returns the CID ``ipfs add`` would print."""

    def put(self, data: bytes) -> str: ...

    def get(self, cid: Cid | str) -> bytes: ...

    def has(self, cid: Cid | str) -> bool: ...


@contextmanager
def _verifying(cid: Cid, source: str) -> Iterator[None]:
    """Turn content-id failures while reading ``cid`` from ``source`` into store errors."""
    try:
        yield
    except CidMismatch as exc:
        raise IntegrityError(f"{source} returned data that does not match {cid}: {exc}") from exc
    except (CidError, CarError) as exc:
        raise BadResponse(f"{source} returned something that is not the file {cid}: {exc}") from exc


def default_blob_dir() -> Path:
    """``$DEML_BLOB_DIR``, else ``$XDG_DATA_HOME/deml/blobs`` (``~/.local/share/...``)."""
    if explicit := os.environ.get("DEML_BLOB_DIR"):
        return Path(explicit)
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data_home) / "deml" / "blobs"


class LocalStore:
    """Blobs as files named by their CID in one directory; the default store."""

    def __init__(self, directory: str | os.PathLike[str], *, cid_version: int = 1) -> None:
        self.directory = Path(directory)
        self.cid_version = cid_version

    def _path(self, cid: Cid) -> Path:
        plain = self.directory / str(cid)
        if cid.codec == DAG_PB and not plain.exists():  # Qm... and bafy... of one DAG
            twin = Cid(1 - cid.version, cid.codec, cid.hash_code, cid.digest)
            twin_path = self.directory / str(twin)
            return twin_path if twin_path.exists() else plain
        return plain

    def put(self, data: bytes) -> str:
        """Write atomically (temp file, fsync, rename), so a crash never leaves half a blob."""
        cid = compute_cid(data, version=self.cid_version)
        path = self.directory / cid
        if path.exists():
            return cid
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return cid

    def get(self, cid: Cid | str) -> bytes:
        parsed = as_cid(cid)
        path = self._path(parsed)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(
                f"{parsed} is not in {self.directory}; put it first, or fetch it from a Kubo "
                "node or gateway (see docs/cids.md)"
            ) from None
        try:
            verify_content(parsed, data)
        except CidMismatch as exc:
            raise IntegrityError(
                f"{path} is corrupted ({exc}); delete it and fetch the blob again"
            ) from exc
        return data

    def has(self, cid: Cid | str) -> bool:
        return self._path(as_cid(cid)).is_file()


class _Http:
    """One base URL, one session, a timeout on every call, and errors translated once."""

    def __init__(self, base_url: str, service: str, *, timeout_s: float, session: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self.service = service
        self.timeout_s = timeout_s
        self.session = session if session is not None else requests.Session()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        url = f"{self.base_url}{path}"
        where = f"{self.service} at {self.base_url}"
        try:
            return self.session.request(method, url, timeout=self.timeout_s, stream=True, **kwargs)
        except requests.Timeout as exc:
            raise StoreUnavailable(
                f"{where} did not answer {path} within {self.timeout_s:g} s; the content may "
                "not be reachable from it, or it is overloaded (raise the timeout or retry)"
            ) from exc
        except requests.RequestException as exc:
            raise StoreUnavailable(
                f"cannot reach {where} ({type(exc).__name__}); is it running, and is the URL right?"
            ) from exc

    def body(self, response: Any, limit: int | None = None) -> bytes:
        """Read a response body, refusing more than ``limit`` bytes."""
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(CHUNK_SIZE):
                size += len(chunk)
                if limit is not None and size > limit:
                    raise BadResponse(f"{self.service} sent more than {limit} bytes for one block")
                chunks.append(chunk)
        except requests.RequestException as exc:
            raise StoreUnavailable(f"{self.service} dropped the connection: {exc}") from exc
        finally:
            response.close()
        return b"".join(chunks)


class KuboStore:
    """A Kubo node's RPC API (``ipfs daemon``, usually ``http://127.0.0.1:5001``).

    Uploads use the same import settings as DeML's profile and are pinned; the CID Kubo
    reports must equal ours. Downloads use ``cat`` and are re-imported to check them; if
    that does not reproduce the CID (content added elsewhere with other settings), the DAG
    is walked with ``block/get`` and every block verified.
    """

    def __init__(
        self,
        api_url: str,
        *,
        cid_version: int = 1,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        session: Any = None,
    ) -> None:
        self.cid_version = cid_version
        self._http = _Http(api_url, "Kubo RPC", timeout_s=timeout_s, session=session)

    def _rpc(self, command: str, *, limit: int | None = None, **kwargs: Any) -> bytes:
        """POST ``/api/v0/<command>`` (Kubo rejects GET) and map its JSON errors."""
        response = self._http.call("POST", f"/api/v0/{command}", **kwargs)
        body = self._http.body(response, None if response.status_code >= 400 else limit)
        if response.status_code == 200:
            return body
        if response.status_code in (404, 405):
            raise BadResponse(
                f"{self._http.base_url} has no /api/v0/{command} (HTTP {response.status_code});"
                " give the Kubo RPC address (port 5001), not a gateway"
            )
        message = _kubo_message(body)
        if "not found" in message.lower():
            raise BlobNotFound(f"Kubo does not have it: {message}")
        raise BadResponse(f"Kubo refused {command} (HTTP {response.status_code}): {message}")

    def put(self, data: bytes) -> str:
        expected = compute_cid(data, version=self.cid_version)
        params = {
            "cid-version": str(self.cid_version),
            "raw-leaves": "true" if self.cid_version == 1 else "false",
            "chunker": f"size-{CHUNK_SIZE}",
            "hash": "sha2-256",
            "pin": "true",
            "quieter": "true",
            "progress": "false",
        }
        upload = {"file": ("blob", data, "application/octet-stream")}
        body = self._rpc("add", params=params, files=upload)
        reported = _kubo_added(body)
        if as_cid(reported) != as_cid(expected):
            raise IntegrityError(
                f"Kubo stored the blob as {reported} but DeML's v{self.cid_version} profile "
                f"gives {expected}; check the node's Import settings and Kubo version"
            )
        return expected

    def get(self, cid: Cid | str) -> bytes:
        parsed = as_cid(cid)
        data = self._rpc("cat", params={"arg": str(parsed)})
        try:
            verify_content(parsed, data)
            return data
        except CidMismatch:
            pass  # maybe another import profile: decide block by block
        with _verifying(parsed, "Kubo"):
            return b"".join(iter_file(parsed, self._block))

    def _block(self, cid: Cid) -> bytes:
        return self._rpc("block/get", params={"arg": str(cid)}, limit=MAX_BLOCK_BYTES)

    def has(self, cid: Cid | str) -> bool:
        """Whether the node holds the root block locally (``offline``: no network search)."""
        try:
            self._rpc("block/stat", params={"arg": str(as_cid(cid)), "offline": "true"})
        except BlobNotFound:
            return False
        return True


def _kubo_message(body: bytes) -> str:
    """The ``Message`` of Kubo's JSON error, else the start of the body."""
    try:
        return str(json.loads(body)["Message"])
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace").strip()


def _kubo_added(body: bytes) -> str:
    lines = [line for line in body.splitlines() if line.strip()]
    try:
        return str(json.loads(lines[-1])["Hash"])
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise BadResponse(f"Kubo add answered {body[:200]!r}, expected JSON with Hash") from exc


class GatewayStore:
    """A trustless HTTP gateway (``/ipfs/<cid>?format=raw|car``): read-only, fully verified.

    ``mode="raw"`` fetches one block per request and walks the DAG; ``mode="car"`` fetches
    the whole DAG as one CARv1 in a single request. Either way every block is hashed.
    """

    def __init__(
        self,
        gateway_url: str,
        *,
        mode: Literal["raw", "car"] = "raw",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        session: Any = None,
    ) -> None:
        self.mode = mode
        self._http = _Http(gateway_url, "gateway", timeout_s=timeout_s, session=session)

    def put(self, data: bytes) -> str:
        raise ReadOnlyStore(
            "a trustless gateway cannot take uploads; put the blob in a Kubo or local store "
            "and make it reachable to the gateway"
        )

    def _fetch(self, cid: Cid, *, method: str, fmt: str, accept: str) -> Any:
        response = self._http.call(
            method, f"/ipfs/{cid}", params={"format": fmt}, headers={"Accept": accept}
        )
        if response.status_code in (404, 410):
            response.close()
            raise BlobNotFound(f"the gateway does not have {cid} (HTTP {response.status_code})")
        if response.status_code != 200:
            detail = self._http.body(response)[:200].decode("utf-8", "replace").strip()
            raise BadResponse(f"gateway answered HTTP {response.status_code} for {cid}: {detail}")
        return response

    def _raw_block(self, cid: Cid) -> bytes:
        response = self._fetch(cid, method="GET", fmt="raw", accept=_RAW_TYPE)
        return self._http.body(response, MAX_BLOCK_BYTES)

    def get(self, cid: Cid | str) -> bytes:
        parsed = as_cid(cid)
        with _verifying(parsed, "the gateway"):
            if self.mode == "car":
                return self._get_car(parsed)
            return b"".join(iter_file(parsed, self._raw_block))

    def _get_car(self, cid: Cid) -> bytes:
        response = self._fetch(cid, method="GET", fmt="car", accept=_CAR_TYPE)
        try:
            response.raw.decode_content = True
            reader = CarReader(response.raw)
            if not any(root.digest == cid.digest for root in reader.roots):
                raise BadResponse(f"the gateway's CAR has roots {reader.roots}, not {cid}")
            blocks = {block.cid.digest: block.data for block in reader}
        except (requests.RequestException, Urllib3Error) as exc:
            raise StoreUnavailable(f"gateway dropped the CAR stream: {exc}") from exc
        finally:
            response.close()
        try:
            return b"".join(iter_file(cid, lambda block_cid: blocks[block_cid.digest]))
        except KeyError:
            raise BadResponse(f"the gateway's CAR for {cid} lacks a block it links to") from None

    def has(self, cid: Cid | str) -> bool:
        """Whether the gateway can serve the root block (a ``HEAD`` request)."""
        try:
            self._fetch(as_cid(cid), method="HEAD", fmt="raw", accept=_RAW_TYPE).close()
        except BlobNotFound:
            return False
        return True


def open_store(spec: str | None = None, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> BlobStore:
    """``kubo:URL``, ``gateway:URL``, ``gateway+car:URL``, or a directory (default: local)."""
    if not spec:
        return LocalStore(default_blob_dir())
    kind, _, rest = spec.partition(":")
    if kind == "kubo" and rest:
        return KuboStore(rest, timeout_s=timeout_s)
    if kind in ("gateway", "gateway+car") and rest:
        mode: Literal["raw", "car"] = "car" if kind == "gateway+car" else "raw"
        return GatewayStore(rest, mode=mode, timeout_s=timeout_s)
    if kind in ("http", "https"):
        raise BadStoreSpec(
            f"ambiguous store {spec!r}: write kubo:{spec} for a Kubo RPC API or gateway:{spec} "
            "for a trustless gateway"
        )
    return LocalStore(rest if kind == "local" and rest else spec)
