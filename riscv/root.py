"""Build (once) and cache the Debian trixie riscv64 root the check runs the DApp in.

The root lives outside the repository, under ``$DEML_CACHE_DIR`` (default ``~/.cache/deml``),
in a directory named by a hash of everything that decides its contents: the Debian package
list, the PyPI pins and the build steps' version. A second run finds it and takes seconds;
changing a package or a pin builds a new one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .host_tools import ensure_host_packages, ensure_riscv64_binfmt
from .mirror import debian_mirror
from .packages import PIP_REQUIREMENTS, debian_packages, pip_pins
from .release_index import KEYRING, FallbackMirror, check_index

SUITE = "trixie"
ARCH = "riscv64"
# Bump when the steps below change what a root holds.
BUILD_STEPS_VERSION = 1
COMPLETE = ".deml-root-complete"
VERSIONS = ".deml-versions"
# A clean environment for commands in the root: pip would otherwise read the host's PIP_*.
ROOT_ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"]
KECCAK_EMPTY = "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"

Log = Callable[[str], None]


def cache_dir() -> Path:
    return Path(os.environ.get("DEML_CACHE_DIR", "~/.cache/deml")).expanduser()


def root_key() -> str:
    digest = hashlib.sha256()
    digest.update(f"{SUITE} {ARCH} steps={BUILD_STEPS_VERSION}\n".encode())
    digest.update("\n".join(debian_packages()).encode() + b"\n")
    digest.update("\n".join(f"{k}=={v}" for k, v in sorted(pip_pins().items())).encode())
    return digest.hexdigest()[:16]


def root_path() -> Path:
    return cache_dir() / f"{ARCH}-{SUITE}-{root_key()}"


def ensure_root(log: Log = print) -> Path:
    """The cached root, built first if there is none for the current package lists."""
    if os.geteuid() != 0:
        raise PermissionError("the riscv64 root needs root: apt-get, binfmt_misc, chroot")
    ensure_host_packages()
    ensure_riscv64_binfmt()
    root = root_path()
    if (root / COMPLETE).exists():
        log(f"riscv64 root: cached at {root}")
        return root
    started = time.monotonic()
    log(f"riscv64 root: building {root} (debootstrap, several minutes on 2 cores)")
    partial = root.with_name(root.name + ".partial")
    remove_partial(partial)
    partial.mkdir(parents=True)
    debootstrap(partial, log)
    install_pypi_packages(partial, log)
    link_crypto(partial)
    smoke_test(partial)
    trim(partial)
    (partial / VERSIONS).write_text(installed_versions(partial))
    (partial / COMPLETE).write_text(f"built in {time.monotonic() - started:.0f} s\n")
    partial.rename(root)
    log(f"riscv64 root: built in {time.monotonic() - started:.0f} s, {du(root)} MB")
    return root


def remove_partial(partial: Path) -> None:
    """A build that was killed may leave debootstrap's /proc and /sys mounts in the root:
    unmount them before deleting anything, so nothing outside the root is touched."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(f"{partial}/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(partial, ignore_errors=True)


def debootstrap(target: Path, log: Log) -> None:
    mirror = debian_mirror()
    packages = ",".join(debian_packages())
    debs = cache_dir() / "debs"  # kept across roots: a changed list downloads only the new
    debs.mkdir(parents=True, exist_ok=True)
    base = [
        "debootstrap",
        f"--arch={ARCH}",
        "--variant=minbase",
        f"--include={packages}",
        f"--cache-dir={debs}",
    ]
    check = check_index(mirror, SUITE, ARCH)
    # The mismatch comes and goes; this setting exercises the fallback on a good day.
    forced = os.environ.get("DEML_RISCV_FORCE_INDEX_FALLBACK") == "1"
    if check.matches and not forced:
        log(f"riscv64 root: signed index verified ({mirror}), stock debootstrap")
        run([*base, f"--keyring={KEYRING}", SUITE, str(target), mirror])
        return
    why = (
        "forced by DEML_RISCV_FORCE_INDEX_FALLBACK=1"
        if check.matches
        else f"the served {check.index_path} does not match its signed Release"
    )
    banner = "!" * 78
    log(
        f"{banner}\n! FALLBACK: {why}\n"
        f"!   signed: {check.signed_size} bytes sha256 {check.signed_sha256}\n"
        f"!   served: {len(check.served)} bytes sha256 {check.served_sha256}\n"
        "! Installing from the index as served, without its signature; every .deb is still\n"
        "! checked against that index's sha256 and size by debootstrap.\n"
        f"{banner}"
    )
    with FallbackMirror(mirror, check) as local:
        run([*base, "--no-check-gpg", SUITE, str(target), local.url])
    # The root's own apt sources should name the real mirror, not a closed loopback port.
    (target / "etc/apt/sources.list").write_text(f"deb {mirror} {SUITE} main\n")


def install_pypi_packages(target: Path, log: Log) -> None:
    """The pure-Python eth-* wheels: downloaded on the host, installed offline in the root."""
    wheels = cache_dir() / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        + ["--dest", str(wheels), "-r", str(PIP_REQUIREMENTS)]
    )
    inside = target / "tmp/deml-wheels"
    inside.mkdir(parents=True, exist_ok=True)
    names = []
    for name, version in pip_pins().items():
        stem = f"{name.replace('-', '_')}-{version}-"
        (wheel,) = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(stem)]
        shutil.copy2(wheel, inside / wheel.name)
        names.append(f"/tmp/deml-wheels/{wheel.name}")
    log(f"riscv64 root: pip install {' '.join(Path(n).name for n in names)}")
    chroot(
        target,
        ["python3", "-m", "pip", "install", "--quiet", "--root-user-action=ignore"]
        + ["--break-system-packages"]
        + ["--no-index", "--no-deps", "--no-cache-dir", *names],
    )
    shutil.rmtree(inside)


def link_crypto(target: Path) -> None:
    """eth-hash imports ``Crypto.Hash.keccak``; Debian ships pycryptodome as ``Cryptodome``
    (the Dockerfile makes the same link)."""
    site = chroot_output(
        target,
        [
            "python3",
            "-c",
            "import Cryptodome, os; print(os.path.dirname(os.path.dirname(Cryptodome.__file__)))",
        ],
    ).strip()
    link = target / site.lstrip("/") / "Crypto"
    if not link.is_symlink():
        link.symlink_to("Cryptodome")


def smoke_test(target: Path) -> None:
    digest = chroot_output(
        target, ["python3", "-c", "from eth_hash.auto import keccak; print(keccak(b'').hex())"]
    ).strip()
    if digest != KECCAK_EMPTY:
        raise RuntimeError(f"keccak(b'') in the root is {digest!r}")


def trim(target: Path) -> None:
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (target / sub).glob("*"):
            if path.is_file():
                path.unlink()


def installed_versions(target: Path) -> str:
    return chroot_output(target, ["dpkg-query", "-W", "-f=${Package} ${Version}\n"])


def du(path: Path) -> int:
    done = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[0])


def chroot(target: Path, command: list[str]) -> None:
    run(["chroot", str(target), *ROOT_ENV, *command])


def chroot_output(target: Path, command: list[str]) -> str:
    done = subprocess.run(
        ["chroot", str(target), *ROOT_ENV, *command], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{command} failed in the root:\n{done.stderr[-2000:]}")
    return done.stdout


def run(command: list[str]) -> None:
    subprocess.run(command, check=True)


if __name__ == "__main__":
    ensure_root()
