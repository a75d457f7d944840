"""Input payloads and amounts from the command line: ``deml send`` and ``deml deposit``.

A payload is raw hex (``0x...``) or an ABI call written as a signature and its arguments
(``'withdrawEther(uint256)' 5``): the same bytes ``cast calldata`` gives. Arguments are
converted by their ABI type: integers in decimal or ``0x`` hex, ``true``/``false``, addresses
and ``bytes`` in hex, strings as written, arrays as JSON (``'[1,2]'``, ``'["0xab.."]'``).
Amounts are decimal units of the asset (``1.5`` ether = 1.5 * 10**18 wei), or ``...wei`` for
base units.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, ClassVar

from eth_abi.abi import encode
from eth_abi.exceptions import EncodingError
from web3 import Web3

from deml_protocol.abi import selector_of

__all__ = ["BadCall", "format_units", "parse_amount", "payload_from_args"]

_SIGNATURE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\((.*)\)$")
_ARRAY = re.compile(r"^(.*)\[(\d*)\]$")


class BadCall(ValueError):
    """The payload or an amount on the command line cannot be encoded."""

    code: ClassVar[str] = "bad_call"


def payload_from_args(first: str, args: list[str]) -> bytes:
    """Raw hex (``first`` starts with ``0x``, no further arguments) or an ABI call."""
    if first.startswith("0x") and "(" not in first:
        if args:
            raise BadCall(
                "a raw hex payload takes no arguments; for an ABI call give its signature"
            )
        return _hex(first, "payload")
    name, types = _parse_signature(first)
    if len(args) != len(types):
        raise BadCall(f"{first} takes {len(types)} argument(s); {len(args)} given")
    values = [_convert(kind, arg) for kind, arg in zip(types, args, strict=True)]
    try:
        body = encode(types, values)
    except (EncodingError, OverflowError, TypeError, ValueError) as exc:
        raise BadCall(f"cannot encode the arguments of {first}: {exc}") from exc
    return selector_of(f"{name}({','.join(types)})") + body


def _parse_signature(signature: str) -> tuple[str, list[str]]:
    match = _SIGNATURE.match(signature.replace(" ", ""))
    if match is None:
        raise BadCall(
            f"{signature!r} is neither 0x-hex nor a signature like 'withdrawEther(uint256)'"
        )
    name, inner = match.groups()
    if "(" in inner:
        raise BadCall("tuple arguments are not supported here: send the call as raw hex")
    return name, [kind for kind in inner.split(",") if kind]


def _convert(kind: str, value: Any) -> Any:
    """A command-line string (or a JSON element of an array) as the value eth-abi wants."""
    array = _ARRAY.match(kind)
    if array is not None:
        try:
            items = json.loads(value) if isinstance(value, str) else value
        except ValueError as exc:  # json.JSONDecodeError, or a number too long to read
            raise BadCall(f"{kind} takes a JSON array, e.g. '[1,2]'; got {value!r}") from exc
        if not isinstance(items, list):
            raise BadCall(f"{kind} takes a JSON array, e.g. '[1,2]'; got {value!r}")
        return [_convert(array.group(1), item) for item in items]
    text = str(value)
    if kind.startswith(("uint", "int")):
        try:
            return int(text, 0)
        except ValueError as exc:
            raise BadCall(f"{kind} takes an integer (decimal or 0x hex); got {text!r}") from exc
    if kind == "address":
        if not Web3.is_address(text):
            raise BadCall(f"address takes 0x and 40 hex digits; got {text!r}")
        return Web3.to_checksum_address(text)
    if kind == "bool":
        if text.lower() not in ("true", "false", "1", "0"):
            raise BadCall(f"bool takes true or false; got {text!r}")
        return text.lower() in ("true", "1")
    if kind.startswith("bytes"):
        return _hex(text, kind)
    if kind == "string":
        return text
    raise BadCall(f"ABI type {kind!r} is not supported here: send the call as raw hex")


def _hex(text: str, what: str) -> bytes:
    digits = text[2:] if text.startswith("0x") else text
    try:
        return bytes.fromhex(digits)
    except ValueError as exc:
        raise BadCall(f"{what} must be 0x and an even number of hex digits; got {text!r}") from exc


def parse_amount(text: str, *, decimals: int = 18) -> int:
    """``1.5`` -> 1.5 * 10**decimals base units; ``123wei`` -> 123. Positive and whole.

    Exact at any size: the digits are read as integers, never rounded to a float's or a
    Decimal context's precision; ``inf`` and ``nan`` are not amounts."""
    cleaned = text.strip().lower().replace("_", "")
    if cleaned.endswith("wei"):
        try:
            units = int(cleaned[:-3])
        except ValueError as exc:
            raise BadCall(f"amount {text!r} is not a number (e.g. 1.5, or 1500wei)") from exc
    else:
        units = _scaled(text, cleaned, decimals)
    if units <= 0:
        raise BadCall(f"amount {text!r} must be more than 0")
    return units


def _scaled(text: str, cleaned: str, decimals: int) -> int:
    """``cleaned`` (a decimal number) times ``10**decimals``, exactly: Decimal with a
    context wide enough for any amount a chain holds (a uint256 has 78 digits), so nothing
    is rounded to the default 28 digits; non-finite and absurd values are refused."""
    with localcontext() as context:
        context.prec = 1_200
        try:
            value = Decimal(cleaned)
        except InvalidOperation as exc:
            raise BadCall(f"amount {text!r} is not a number (e.g. 1.5, or 1500wei)") from exc
        if not value.is_finite():
            raise BadCall(f"amount {text!r} is not a number (e.g. 1.5, or 1500wei)")
        if value and not -1_000 < value.adjusted() < 1_000:  # no amount has 1,000 digits
            raise BadCall(f"amount {text!r} is out of range")
        scaled = value.scaleb(decimals)
        if scaled != scaled.to_integral_value():
            raise BadCall(f"{text} has more than {decimals} decimals")
        return int(scaled)


def format_units(units: int, *, decimals: int = 18) -> str:
    """``1500000000000000000`` -> ``1.5`` (exact, no float)."""
    whole, fraction = divmod(units, 10**decimals)
    if not fraction:
        return str(whole)
    return f"{whole}.{str(fraction).rjust(decimals, '0').rstrip('0')}"
