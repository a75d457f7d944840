"""The riscv64 root's plumbing that needs no root: the mirror choice and the index fallback."""

from __future__ import annotations

import hashlib
import http.client
from pathlib import Path

import pytest

from riscv.mirror import debian_mirror
from riscv.packages import debian_packages, pip_pins
from riscv.release_index import FallbackMirror, IndexCheck, fallback_release, release_entry

RELEASE = """Origin: Debian
Suite: stable
Codename: trixie
Architectures: amd64 riscv64
Components: main
Acquire-By-Hash: yes
MD5Sum:
 0123 10 main/binary-riscv64/Packages.xz
SHA256:
 aaaa 9387120 main/binary-riscv64/Packages.xz
 bbbb 500 main/binary-amd64/Packages.xz
"""


def test_the_mirror_comes_from_the_hosts_apt_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "other.sources").write_text(
        "Types: deb\nURIs: https://vendor.invalid/apt\nSuites: x\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian/\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.invalid/debian-security\nSuites: bookworm-security\n"
    )
    assert debian_mirror({}, tmp_path) == "http://mirror.invalid/debian"
    (tmp_path / "sources.list").write_text(
        "# a comment\ndeb-src http://src.invalid/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://first.invalid/debian bookworm main\n"
    )
    assert debian_mirror({}, tmp_path) == "http://first.invalid/debian"
    assert debian_mirror({"DEML_DEBIAN_MIRROR": "http://x.invalid/d/"}, tmp_path) == (
        "http://x.invalid/d"
    )


def test_no_debian_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="DEML_DEBIAN_MIRROR"):
        debian_mirror({}, tmp_path)


def test_the_fallback_serves_the_index_as_served_and_redirects_the_rest() -> None:
    served = b"the index as the mirror serves it"
    sha256, size = release_entry(RELEASE, "main/binary-riscv64/Packages.xz")
    check = IndexCheck("trixie", "main/binary-riscv64/Packages.xz", RELEASE, sha256, size, served)
    assert (sha256, size) == ("aaaa", 9387120) and not check.matches
    release = fallback_release(check)
    digest = hashlib.sha256(served).hexdigest()
    assert release.endswith(f"SHA256:\n {digest} {len(served)} main/binary-riscv64/Packages.xz\n")
    assert "Codename: trixie" in release and "Acquire-By-Hash" not in release
    assert "aaaa" not in release and "MD5Sum" not in release
    with FallbackMirror("http://mirror.invalid/debian", check) as local:
        host, port = local.url.removeprefix("http://").split(":")

        def get(path: str) -> http.client.HTTPResponse:
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            connection.request("GET", path)
            return connection.getresponse()

        assert get("/dists/trixie/Release").read().decode() == release
        assert get("/dists/trixie/main/binary-riscv64/Packages.xz").read() == served
        assert get("/dists/trixie/InRelease").status == 404  # unsigned: nothing to verify
        moved = get("/pool/main/p/python3/python3_3.13.deb")
        assert moved.status == 302
        assert moved.getheader("Location") == (
            "http://mirror.invalid/debian/pool/main/p/python3/python3_3.13.deb"
        )


def test_the_cache_key_follows_the_package_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    from riscv import root

    key = root.root_key()
    assert key == root.root_key() and len(key) == 16
    monkeypatch.setattr(root, "debian_packages", lambda: [*debian_packages(), "python3-scipy"])
    assert root.root_key() != key
    monkeypatch.undo()
    monkeypatch.setattr(root, "pip_pins", lambda: {**pip_pins(), "eth-abi": "6.0.1"})
    assert root.root_key() != key
    monkeypatch.setenv("DEML_CACHE_DIR", "/var/cache/elsewhere")
    assert str(root.root_path()).startswith("/var/cache/elsewhere/riscv64-trixie-")
