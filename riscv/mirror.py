"""Which Debian mirror to build from: the one the host's apt already uses.

The repository names no registry host; ``DEML_DEBIAN_MIRROR`` overrides the choice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

APT_DIR = Path("/etc/apt")


def debian_mirror(env: Mapping[str, str] = os.environ, apt_dir: Path = APT_DIR) -> str:
    override = env.get("DEML_DEBIAN_MIRROR", "").strip()
    if override:
        return override.rstrip("/")
    for uri in apt_uris(apt_dir):
        # The main archive: its path ends in /debian (not /debian-security, not a third party).
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    raise RuntimeError(
        f"no Debian archive in {apt_dir}/sources.list*; set DEML_DEBIAN_MIRROR to a mirror URL"
    )


def apt_uris(apt_dir: Path = APT_DIR) -> Iterator[str]:
    """Binary (``deb``) source URIs, in the order apt reads the files."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        if path.suffix == ".sources":
            yield from _deb822_uris(path.read_text())
        elif path.suffix == ".list" or path.name == "sources.list":
            yield from _one_line_uris(path.read_text())


def _one_line_uris(text: str) -> Iterator[str]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # [arch=amd64 signed-by=...] options
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if words:
            yield words[0]


def _deb822_uris(text: str) -> Iterator[str]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        yield from fields.get("uris", "").split()
