"""Notice layouts: ``selector ‖ abi.encode(fields)``, like a function call.

The 4-byte selector tells a reader (a contract, a script, ``deml``) which layout follows;
decode the rest with the signature. ``docs/protocol.md`` lists them.
"""

from __future__ import annotations

from typing import Any, Final

from .abi import Method, method

BLOB_STORED: Final = method(
    "BlobStored", ("cid", "string"), ("size", "uint64"), ("uploader", "address")
)
JOB_CREATED: Final = method(
    "JobCreated",
    ("jobId", "uint256"),
    ("sponsor", "address"),
    ("asset", "address"),
    ("reward", "uint256"),
    ("modelCid", "string"),
    ("metric", "string"),
    ("rounds", "uint32"),
)
ROUND_CLOSED: Final = method(
    "RoundClosed",
    ("jobId", "uint256"),
    ("round", "uint256"),
    ("holdoutRevealed", "bool"),
    ("baseline", "int256"),
    ("clients", "address[]"),
    ("scores", "int256[]"),
    ("accepted", "bool[]"),
    ("newModelCid", "string"),
    ("paid", "address[]"),
    ("amounts", "uint256[]"),
    ("carried", "uint256"),
    ("refund", "uint256"),
)
EVALUATION: Final = method(
    "Evaluation",
    ("modelCid", "string"),
    ("dataCid", "string"),
    ("metric", "string"),
    ("score", "int256"),
    ("rows", "uint256"),
)

BLOB_DELETED: Final = method("BlobDeleted", ("cid", "string"), ("size", "uint64"))
ALL_NOTICES: Final[tuple[Method, ...]] = (
    BLOB_STORED,
    BLOB_DELETED,
    JOB_CREATED,
    ROUND_CLOSED,
    EVALUATION,
)


def decode_notice(payload: bytes) -> tuple[str, dict[str, Any]]:
    """``(name, fields)`` of a DeML notice; ValueError for anything else."""
    for notice in ALL_NOTICES:
        if payload[:4] == notice.selector:
            return notice.name, notice.decode_args(payload[4:])
    raise ValueError(f"not a DeML notice: selector 0x{payload[:4].hex()}")
