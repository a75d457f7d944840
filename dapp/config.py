"""Deployment settings, read once at start-up from the environment.

Defaults are the deterministic @cartesi/rollups 2.2.0 portal addresses, so a DApp built
without any settings accepts deposits exactly from the real portals. Every validator must
run with the same settings (they are part of the machine image), or their states diverge.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from deml_protocol import addresses

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class BlobLimits:
    """Bounds on blob memory: the machine keeps every stored blob in RAM (1 GiB image)."""

    max_blob_bytes: int = 32 * MIB
    sender_quota_bytes: int = 64 * MIB
    total_quota_bytes: int = 256 * MIB
    #: An upload not finished this long (block time) after its beginBlob is abandoned.
    upload_ttl_s: int = 24 * 3600
    max_uploads_per_sender: int = 4
    #: A blob nothing references is kept this long (block time) after it was stored or last
    #: referenced, then anyone may collect it (``collectBlobs``).
    keep_s: int = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class Config:
    ether_portal: str = addresses.ETHER_PORTAL
    erc20_portal: str = addresses.ERC20_PORTAL
    blobs: BlobLimits = field(default_factory=BlobLimits)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        defaults = BlobLimits()
        blobs = BlobLimits(
            max_blob_bytes=int(env.get("DEML_MAX_BLOB_BYTES", defaults.max_blob_bytes)),
            sender_quota_bytes=int(env.get("DEML_SENDER_QUOTA_BYTES", defaults.sender_quota_bytes)),
            total_quota_bytes=int(env.get("DEML_TOTAL_QUOTA_BYTES", defaults.total_quota_bytes)),
            upload_ttl_s=int(env.get("DEML_UPLOAD_TTL_S", defaults.upload_ttl_s)),
            max_uploads_per_sender=int(
                env.get("DEML_MAX_UPLOADS_PER_SENDER", defaults.max_uploads_per_sender)
            ),
            keep_s=int(env.get("DEML_BLOB_KEEP_S", defaults.keep_s)),
        )
        return cls(
            ether_portal=addresses.normalize_address(
                env.get("DEML_ETHER_PORTAL", addresses.ETHER_PORTAL)
            ),
            erc20_portal=addresses.normalize_address(
                env.get("DEML_ERC20_PORTAL", addresses.ERC20_PORTAL)
            ),
            blobs=blobs,
        )
