"""Addresses every DeML component agrees on.

The portal addresses are the deterministic CREATE2 addresses of @cartesi/rollups 2.2.0
(zero salt through the standard deployer), the same on every chain where they are deployed.
"""

from __future__ import annotations

from typing import Final

ZERO_ADDRESS: Final = "0x" + "00" * 20
#: The asset key for ether in the ledger (ERC-20 tokens are keyed by their address).
ETHER: Final = ZERO_ADDRESS

CREATE2_DEPLOYER: Final = "0x4e59b44847b379578588920ca78fbf26c0b4956c"

INPUT_BOX: Final = "0x1b51e2992a2755ba4d6f7094032df91991a0cfac"
ETHER_PORTAL: Final = "0xa632c5c05812c6a6149b7af5c56117d1d2603828"
ERC20_PORTAL: Final = "0xaca6586a0cf05bd831f2501e7b4aea550da6562d"
ERC721_PORTAL: Final = "0x9e8851dadb2b77103928518846c4678d48b5e371"
ERC1155_SINGLE_PORTAL: Final = "0x18558398dd1a8ce20956287a4da7b76ae7a96662"
ERC1155_BATCH_PORTAL: Final = "0xe246abb974b307490d9c6932f48ebe79de72338a"
SAFE_ERC20_TRANSFER: Final = "0xb7c2bcaa4437425cfce9d233bff15ef461273d63"
APPLICATION_FACTORY: Final = "0x26e758238cb6ec5ab70ce0dd52af2d7b82e1972e"
AUTHORITY_FACTORY: Final = "0x5e96408cfe423b01daded3bc867e6013135990cc"
QUORUM_FACTORY: Final = "0x1c91ba8aa5648cdac77e97eac781447c646ef239"
SELF_HOSTED_APPLICATION_FACTORY: Final = "0x010d3cbb4223f5bcc7b7b03cee59f3aaea8edb8a"


def normalize_address(value: str) -> str:
    """Lowercase ``0x``-prefixed 20-byte hex; ValueError for anything else."""
    text = value.strip()
    if not (text.startswith(("0x", "0X")) and len(text) == 42):
        raise ValueError(f"not a 20-byte hex address: {value!r}")
    try:
        bytes.fromhex(text[2:])
    except ValueError:
        raise ValueError(f"not a 20-byte hex address: {value!r}") from None
    return "0x" + text[2:].lower()
