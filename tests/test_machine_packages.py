"""The machine's package lists agree: the Dockerfile, machine/debian-packages.txt (which the
Dockerfile and ``make riscv-check`` both install), machine/pip-requirements.txt and the
host's requirements.txt."""

from __future__ import annotations

import re
from pathlib import Path

from riscv.packages import debian_packages, normalise, pip_pins

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = (REPO / "Dockerfile").read_text()

#: The Debian package that provides each host requirement in the machine.
DEBIAN_FOR = {
    "numpy": "python3-numpy",
    "onnxruntime": "python3-onnxruntime",
    "onnx": "python3-onnx",
    "protobuf": "python3-protobuf",
    "requests": "python3-requests",
    "pycryptodome": "python3-pycryptodome",  # eth-hash[pycryptodome]
}
#: What the pure-Python eth-* packages import, installed with --no-deps on top of Debian's.
ETH_DEPENDENCIES = ["python3-pydantic", "python3-cytoolz", "python3-toolz", "python3-parsimonious"]


def host_requirements() -> dict[str, tuple[str, set[str]]]:
    """requirements.txt as {name: (version, extras)}."""
    found = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[([^\]]*)\])?==(\S+)", line)
        assert match, f"requirements.txt: not an exact pin: {line!r}"
        extras = {e.strip() for e in (match.group(2) or "").split(",") if e.strip()}
        found[normalise(match.group(1))] = (match.group(3), extras)
    return found


def test_the_dockerfile_installs_the_shared_lists() -> None:
    install = DOCKERFILE.split("apt-get install", 1)[1].split("&& rm", 1)[0]
    assert "COPY machine/debian-packages.txt /tmp/debian-packages.txt" in DOCKERFILE
    assert "$(sed 's/#.*//' /tmp/debian-packages.txt)" in install
    # No package is named in the Dockerfile itself: the list is the one source.
    named = [w for w in install.split() if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", w)]
    assert named == [], f"packages named in the Dockerfile, not in the list: {named}"
    assert "-r machine/pip-requirements.txt" in DOCKERFILE
    assert "COPY machine/pip-requirements.txt machine/pip-requirements.txt" in DOCKERFILE


def test_the_debian_list_is_clean() -> None:
    packages = debian_packages()
    assert len(packages) == len(set(packages)), "a package is listed twice"
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", p) for p in packages), packages
    # onnxruntime depends on a virtual package neither apt nor debootstrap can choose.
    assert "libre2-11" in packages


def test_every_host_requirement_exists_in_the_machine() -> None:
    debian, pins = set(debian_packages()), pip_pins()
    for name, (version, extras) in host_requirements().items():
        if name in pins:
            assert pins[name] == version, f"{name}: machine {pins[name]}, host {version}"
        else:
            assert DEBIAN_FOR.get(name) in debian, f"{name} is in neither machine list"
        for extra in extras:
            assert DEBIAN_FOR.get(extra) in debian, f"{name}[{extra}] is not in the machine"


def test_pypi_packages_are_the_eth_ones_with_their_debian_dependencies() -> None:
    pins = pip_pins()
    assert sorted(pins) == ["eth-abi", "eth-hash", "eth-typing", "eth-utils"]
    assert set(ETH_DEPENDENCIES) <= set(debian_packages())
    for name in pins:  # a PyPI package must not also come from Debian
        assert f"python3-{name}" not in debian_packages()
