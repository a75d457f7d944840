"""Every advance input the DApp accepts, by ABI signature.

An input payload is ``selector ‖ abi.encode(args)``. Build one with ``WITHDRAW_ETHER.encode(…)``
or with any Ethereum tool (``cast calldata "withdrawEther(uint256)" 1000``). Deposits arrive
through the Cartesi portals instead; their ``execLayerData`` may carry one of these calls,
which then runs on behalf of the depositor. ``docs/protocol.md`` documents each one.
"""

from __future__ import annotations

from typing import Final

from .abi import Method, method

# Ledger
WITHDRAW_ETHER: Final = method("withdrawEther", ("amount", "uint256"))
WITHDRAW_ERC20: Final = method("withdrawERC20", ("token", "address"), ("amount", "uint256"))

# Blob uploads (content addressed: a blob is named by its CID)
BEGIN_BLOB: Final = method("beginBlob", ("cid", "string"), ("size", "uint64"))
PUT_CHUNK: Final = method("putChunk", ("cid", "string"), ("offset", "uint64"), ("data", "bytes"))
ABORT_BLOB: Final = method("abortBlob", ("cid", "string"))

ALL_INPUTS: Final[tuple[Method, ...]] = (
    WITHDRAW_ETHER,
    WITHDRAW_ERC20,
    BEGIN_BLOB,
    PUT_CHUNK,
    ABORT_BLOB,
)
