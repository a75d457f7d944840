"""Is the mirror's riscv64 package index the one its signed Release file names?

On our machines the trixie riscv64 ``Packages.xz`` was once served with another size and hash
than the signed ``Release`` lists, and debootstrap (rightly) refuses it. When that happens the
check does not give up: :class:`FallbackMirror` serves debootstrap a Release file that names
the index as served (no signature: the fallback is announced loudly), and redirects every
other path to the real mirror. debootstrap still checks each ``.deb`` it downloads against the
sha256 and size in that index, so what is taken on trust is the index alone.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True, slots=True)
class IndexCheck:
    suite: str
    index_path: str  # e.g. main/binary-riscv64/Packages.xz, relative to dists/<suite>/
    release: str  # the Release text whose signature gpgv verified
    signed_sha256: str
    signed_size: int
    served: bytes  # the index as the mirror serves it

    @property
    def served_sha256(self) -> str:
        return hashlib.sha256(self.served).hexdigest()

    @property
    def matches(self) -> bool:
        return self.served_sha256 == self.signed_sha256 and len(self.served) == self.signed_size


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=120) as reply:
        data: bytes = reply.read()
        return data


def check_index(mirror: str, suite: str, arch: str, keyring: Path = KEYRING) -> IndexCheck:
    index_path = f"main/binary-{arch}/Packages.xz"
    release = verified_release(fetch(f"{mirror}/dists/{suite}/InRelease"), keyring)
    sha256, size = release_entry(release, index_path)
    served = fetch(f"{mirror}/dists/{suite}/{index_path}")
    return IndexCheck(suite, index_path, release, sha256, size, served)


def verified_release(in_release: bytes, keyring: Path) -> str:
    """The signed text of an InRelease file; raises if no key in the keyring signed it."""
    with tempfile.TemporaryDirectory() as tmp:
        signed, text = Path(tmp, "InRelease"), Path(tmp, "Release")
        signed.write_bytes(in_release)
        done = subprocess.run(
            ["gpgv", "--keyring", str(keyring), "--output", str(text), str(signed)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"InRelease signature does not verify:\n{done.stderr}")
        return text.read_text()


def release_entry(release: str, path: str) -> tuple[str, int]:
    """(sha256, size) the Release file lists for ``path``."""
    in_sha256 = False
    for line in release.splitlines():
        if not line.startswith(" "):
            in_sha256 = line.startswith("SHA256:")
            continue
        words = line.split()
        if in_sha256 and len(words) == 3 and words[2] == path:
            return words[0], int(words[1])
    raise RuntimeError(f"the Release file lists no SHA256 entry for {path}")


def fallback_release(check: IndexCheck) -> str:
    """The signed Release's header fields, with one checksum line: the index as served."""
    header = []
    for line in check.release.splitlines():
        if line.startswith(" ") or line.startswith(("MD5Sum:", "SHA1:", "SHA256:")):
            continue
        if line.startswith(("Acquire-By-Hash:", "Signed-By:")):
            continue
        header.append(line)
    entry = f" {check.served_sha256} {len(check.served)} {check.index_path}"
    return "\n".join([*header, "SHA256:", entry]) + "\n"


class FallbackMirror:
    """A loopback HTTP mirror: Release and the index from memory, everything else a redirect
    to ``mirror`` (debootstrap's wget follows it)."""

    def __init__(self, mirror: str, check: IndexCheck) -> None:
        files = {
            f"/dists/{check.suite}/Release": fallback_release(check).encode(),
            f"/dists/{check.suite}/{check.index_path}": check.served,
        }
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(mirror, files))
        self._httpd.daemon_threads = True
        # A short poll: shutdown() waits for the loop to look (the default 0.5 s per stop).
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FallbackMirror:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(mirror: str, files: dict[str, bytes]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = files.get(self.path)
            if body is not None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path.startswith("/dists/"):
                self.send_error(404)  # InRelease, Release.gpg, other indexes: not offered
            else:
                self.send_response(302)
                self.send_header("Location", mirror + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler
