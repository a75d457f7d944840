"""The image's description agrees with itself: cartesi.toml, the Dockerfile, the DApp's
settings and what docs/machine.md and docs/evaluation.md state about them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from dapp.config import Config
from dapp.work_budget import WORK_BUDGET
from riscv.qemu_machine import IMAGE_ENV

REPO = Path(__file__).resolve().parent.parent
TOML: dict[str, Any] = tomllib.loads((REPO / "cartesi.toml").read_text())
DOCKERFILE = (REPO / "Dockerfile").read_text()
MACHINE_DOC = (REPO / "docs" / "machine.md").read_text()
EVALUATION_DOC = (REPO / "docs" / "evaluation.md").read_text()

SDK = "cartesi/sdk:0.12.0"
#: Keys the Cartesi CLI 2.x reads from cartesi.toml (its config parser, snake_case). A key
#: outside these is ignored without a word, e.g. the early alphas' ``ram-length``.
TOP_KEYS = {"sdk", "machine", "drives", "nvrams", "withdrawal"}
MACHINE_KEYS = {
    "assert_rolling_template",
    "boot_args",
    "entrypoint",
    "env",
    "env_file",
    "max_mcycle",
    "ram_image",
    "ram_length",
    "use_docker_env",
    "use_docker_workdir",
    "user",
}
DOCKER_DRIVE_KEYS = {
    "builder",
    "build_args",
    "context",
    "dockerfile",
    "extra_size",
    "format",
    "image",
    "mount",
    "shared",
    "tags",
    "target",
    "user",
}
UNITS = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}


def mib(length: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", length)
    assert match, f"ram_length {length!r}: write it as cartesi-machine reads it, e.g. 2Gi"
    return int(match.group(1)) * UNITS[match.group(2)] // (1 << 20)


def dockerfile_env() -> dict[str, str]:
    """The Dockerfile's ENV instructions (``KEY=VALUE`` forms, continued lines joined)."""
    joined = DOCKERFILE.replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            for key, value in re.findall(r'([A-Z_][A-Z0-9_]*)=("[^"]*"|\S+)', line[4:]):
                found[key] = value.strip('"')
    return found


def section(doc: str, heading: str) -> str:
    start = doc.index(heading)
    end = doc.find("\n## ", start + len(heading))
    return doc[start : end if end != -1 else len(doc)]


def documented_peak_mib() -> tuple[int, int]:
    """(native, qemu) peak RSS from the RAM section's table."""
    ram = section(MACHINE_DOC, "## RAM (`ram_length`)")
    peak_row = "| after the closes and the evaluations"
    row = next(line for line in ram.splitlines() if line.startswith(peak_row))
    native, qemu = (int(v) for v in re.findall(r"\*\*(\d+) MiB\*\*", row))
    return native, qemu


def test_cartesi_toml_uses_only_keys_the_cli_reads() -> None:
    assert set(TOML) <= TOP_KEYS, set(TOML) - TOP_KEYS
    assert set(TOML["machine"]) <= MACHINE_KEYS, set(TOML["machine"]) - MACHINE_KEYS
    root = TOML["drives"]["root"]
    assert set(root) <= DOCKER_DRIVE_KEYS, set(root) - DOCKER_DRIVE_KEYS
    assert root["builder"] == "docker"
    assert root["format"] == "ext2"
    assert (REPO / root["dockerfile"]).is_file()
    # Sizes of drives go through the `bytes` package, which reads "100Mi" as 100 bytes.
    assert re.fullmatch(r"\d+MB", root["extra_size"]), root["extra_size"]


def test_the_sdk_is_pinned_and_documented() -> None:
    assert TOML["sdk"] == SDK
    assert f"`{SDK}`" in MACHINE_DOC


def test_ram_is_at_least_twice_the_measured_peak_and_documented() -> None:
    length = TOML["machine"]["ram_length"]
    native, qemu = documented_peak_mib()
    assert qemu >= native
    assert mib(length) >= 2 * qemu, f"{length} is under 2x the measured peak of {qemu} MiB"
    assert f'`ram_length = "{length}"`' in MACHINE_DOC
    assert f"{native} MiB native, {qemu} MiB under qemu-user" in (REPO / "cartesi.toml").read_text()


def test_the_ram_measurement_fills_the_documented_quota() -> None:
    quota = Config.from_env({}).blobs.total_quota_bytes
    ram = section(MACHINE_DOC, "## RAM (`ram_length`)")
    assert f"upload {quota >> 20} MiB of blobs, exactly `DEML_TOTAL_QUOTA_BYTES`" in ram


def test_every_image_setting_is_listed() -> None:
    settings = section(MACHINE_DOC, "## Settings that are part of the image")
    env = dockerfile_env()
    assert set(env) == {
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "OMP_NUM_THREADS",
        "ROLLUP_HTTP_SERVER_URL",
    }
    for key, value in env.items():
        assert f"| `{key}` | `{value}` |" in settings, key
    read = set()
    for module in ("config.py", "__main__.py"):
        read |= set(re.findall(r'"(DEML_[A-Z0-9_]+)"', (REPO / "dapp" / module).read_text()))
    assert read, "no DEML_* setting found in dapp/"
    missing = sorted(key for key in read if f"`{key}`" not in settings)
    assert missing == [], f"settings the DApp reads but docs/machine.md does not list: {missing}"


def test_documented_defaults_are_the_code_defaults() -> None:
    settings = section(MACHINE_DOC, "## Settings that are part of the image")
    config = Config.from_env({})
    expected = {
        "DEML_ETHER_PORTAL": f"`{config.ether_portal}`",
        "DEML_ERC20_PORTAL": f"`{config.erc20_portal}`",
        "DEML_MAX_BLOB_BYTES": str(config.blobs.max_blob_bytes),
        "DEML_SENDER_QUOTA_BYTES": str(config.blobs.sender_quota_bytes),
        "DEML_TOTAL_QUOTA_BYTES": str(config.blobs.total_quota_bytes),
        "DEML_UPLOAD_TTL_S": str(config.blobs.upload_ttl_s),
        "DEML_MAX_UPLOADS_PER_SENDER": str(config.blobs.max_uploads_per_sender),
        "DEML_BLOB_KEEP_S": str(config.blobs.keep_s),
    }
    for key, default in expected.items():
        row = next(line for line in settings.splitlines() if line.startswith(f"| `{key}` |"))
        assert row.split("|")[2].strip().split(" ")[0] == default, row


def test_the_riscv_check_runs_with_the_image_env() -> None:
    """riscv/qemu_machine.py runs the DApp with the image's ENV, the URL aside."""
    env = dockerfile_env()
    del env["ROLLUP_HTTP_SERVER_URL"]
    assert env.items() <= IMAGE_ENV.items()


def test_the_guest_tools_version_is_the_documented_one() -> None:
    version = re.search(r"MACHINE_GUEST_TOOLS_VERSION=(\S+)", DOCKERFILE)
    assert version is not None
    assert f"**machine-guest-tools {version.group(1)}**" in MACHINE_DOC


def test_the_documented_work_budget_is_the_code_one() -> None:
    assert WORK_BUDGET == 500_000_000
    assert "keep `WORK_BUDGET` = 5·10^8" in EVALUATION_DOC
    assert "**180 s x 150 M cycles/s = 27 billion cycles**" in EVALUATION_DOC
