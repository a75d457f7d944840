"""The machine image's package lists: Debian packages and the PyPI pins on top of them.

``machine/debian-packages.txt`` is read both by the Dockerfile and by the riscv64 root built
here, so the check runs the userland the image ships.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEBIAN_PACKAGES = REPO_ROOT / "machine" / "debian-packages.txt"
PIP_REQUIREMENTS = REPO_ROOT / "machine" / "pip-requirements.txt"
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s;#]+)")


def _lines(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def debian_packages(path: Path = DEBIAN_PACKAGES) -> list[str]:
    return _lines(path)


def pip_pins(path: Path = PIP_REQUIREMENTS) -> dict[str, str]:
    """``name==version`` lines as {normalised name: version}; anything else is an error."""
    pins: dict[str, str] = {}
    for line in _lines(path):
        match = _PIN.match(line)
        if match is None:
            raise ValueError(f"{path.name}: not an exact pin: {line!r}")
        pins[normalise(match.group(1))] = match.group(3)
    return pins


def normalise(name: str) -> str:
    """PEP 503 name normalisation: eth_abi, Eth.Abi and eth-abi are one project."""
    return re.sub(r"[-_.]+", "-", name).lower()
