"""What the host needs to build and run a riscv64 root: qemu-user-static, debootstrap and a
binfmt_misc entry, so that a plain ``chroot`` runs riscv64 binaries through qemu."""

from __future__ import annotations

import subprocess
from pathlib import Path

# Debian 12 (bookworm) versions, installed from the host's own apt sources. A host that already
# has the tools at another version keeps them (the check says which it used).
HOST_PACKAGES = {
    "qemu-user-static": "1:7.2+dfsg-7+deb12u18+b3",
    "debootstrap": "1.0.128+nmu2+deb12u2",
    "binfmt-support": "2.2.2-2",
}
BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
QEMU_ENTRY = "qemu-riscv64"


def installed_version(package: str) -> str | None:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status} ${Version}", package],
        capture_output=True,
        text=True,
    )
    words = done.stdout.split()
    # "install ok installed <version>"
    if done.returncode != 0 or words[:3] != ["install", "ok", "installed"]:
        return None
    return words[3]


def ensure_host_packages() -> dict[str, str]:
    """Install the missing tools (idempotent); returns {package: version in use}."""
    missing = [name for name in HOST_PACKAGES if installed_version(name) is None]
    if missing:
        pinned = [f"{name}={HOST_PACKAGES[name]}" for name in missing]
        command = ["apt-get", "install", "-y", "--no-install-recommends", *pinned]
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        if subprocess.run(command, env=env).returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update"], env=env, check=True)
            subprocess.run(command, env=env, check=True)
    versions = {name: installed_version(name) for name in HOST_PACKAGES}
    absent = [name for name, version in versions.items() if version is None]
    if absent:
        raise RuntimeError(f"host packages still missing: {absent}")
    return {name: version for name, version in versions.items() if version is not None}


def ensure_riscv64_binfmt() -> None:
    """Register qemu for riscv64 ELF files. Containers often lack the binfmt_misc mount."""
    entry = BINFMT_MISC / QEMU_ENTRY
    if not (BINFMT_MISC / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT_MISC)], check=True)
    if not entry.exists() or "enabled" not in entry.read_text():
        subprocess.run(["update-binfmts", "--enable", QEMU_ENTRY], check=True)
    text = entry.read_text() if entry.exists() else ""
    if "enabled" not in text:
        raise RuntimeError(f"{entry} is not enabled after update-binfmts")
    # The F flag makes the kernel open the interpreter now, so it works inside a chroot that
    # has no qemu binary of its own.
    if "flags: " not in text or "F" not in text.split("flags: ", 1)[1].split()[0]:
        raise RuntimeError(f"{entry} lacks the F (fix binary) flag; chroot would fail")
