"""Deployment settings, read once at start-up from the environment.

Defaults are the deterministic @cartesi/rollups 2.2.0 portal addresses, so a DApp built
without any settings accepts deposits exactly from the real portals.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from deml_protocol import addresses


@dataclass(frozen=True, slots=True)
class Config:
    ether_portal: str = addresses.ETHER_PORTAL
    erc20_portal: str = addresses.ERC20_PORTAL

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        env = os.environ if env is None else env
        return cls(
            ether_portal=addresses.normalize_address(
                env.get("DEML_ETHER_PORTAL", addresses.ETHER_PORTAL)
            ),
            erc20_portal=addresses.normalize_address(
                env.get("DEML_ERC20_PORTAL", addresses.ERC20_PORTAL)
            ),
        )
