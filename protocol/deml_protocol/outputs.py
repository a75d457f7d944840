"""The bytes of Cartesi v2 outputs, as libcmt writes them (fact sheet §2.2).

These are what the outputs Merkle tree hashes and what ``Application.executeOutput`` /
``validateOutput`` take.
"""

from __future__ import annotations

from typing import Final

from eth_abi.abi import decode, encode

from .abi import method

NOTICE: Final = method("Notice", ("payload", "bytes"))
VOUCHER: Final = method(
    "Voucher", ("destination", "address"), ("value", "uint256"), ("payload", "bytes")
)
DELEGATE_CALL_VOUCHER: Final = method(
    "DelegateCallVoucher", ("destination", "address"), ("payload", "bytes")
)


def notice_output(payload: bytes) -> bytes:
    return NOTICE.selector + encode(["bytes"], [payload])


def voucher_output(destination: str, value: int, payload: bytes) -> bytes:
    return VOUCHER.selector + encode(["address", "uint256", "bytes"], [destination, value, payload])


def delegate_call_voucher_output(destination: str, payload: bytes) -> bytes:
    return DELEGATE_CALL_VOUCHER.selector + encode(["address", "bytes"], [destination, payload])


def output_type(raw: bytes) -> str:
    """ "Notice", "Voucher" or "DelegateCallVoucher" (node v2's ``decoded_data.type``)."""
    for kind in (NOTICE, VOUCHER, DELEGATE_CALL_VOUCHER):
        if raw[:4] == kind.selector:
            return kind.name
    raise ValueError(f"not a Cartesi output: selector 0x{raw[:4].hex()}")


def decode_output(raw: bytes) -> dict[str, object]:
    """Fields of an output: type, payload, and for vouchers destination and value."""
    kind = output_type(raw)
    if kind == "Notice":
        (payload,) = decode(["bytes"], raw[4:])
        return {"type": kind, "payload": payload}
    if kind == "Voucher":
        destination, value, payload = decode(["address", "uint256", "bytes"], raw[4:])
        return {"type": kind, "destination": destination, "value": value, "payload": payload}
    destination, payload = decode(["address", "bytes"], raw[4:])
    return {"type": kind, "destination": destination, "payload": payload}
