"""Multibase text encodings and unsigned varints, the two byte-level layers of a CID.

:class:`CidError` lives here, in the lowest layer, so that every content-id failure (bad text,
bad varint, malformed dag-pb, hash mismatch) is one ``CidError`` for callers to catch.
Only what CIDs need: base32 (``b``/``B``), base58btc (``z`` and the bare ``Qm...`` form of
CIDv0) and base16 (``f``/``F``). Standard library only, because this runs in the machine.
Every decoder is strict: a string that is not canonical for its base is refused, so one
content id has exactly one spelling per base.
"""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar, Final

__all__ = [
    "CidError",
    "MultibaseError",
    "b32_decode",
    "b32_encode",
    "b58_decode",
    "b58_encode",
    "multibase_decode",
    "varint_decode",
    "varint_encode",
]

_B58_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX: Final = {ch: i for i, ch in enumerate(_B58_ALPHABET)}
_B32_LOWER: Final = frozenset("abcdefghijklmnopqrstuvwxyz234567")
#: The unsigned-varint spec caps a varint at 9 bytes (63 bits of payload).
MAX_VARINT_BYTES: Final = 9


class CidError(ValueError):
    """Root of content-id errors; ``code`` is the stable name the console prints."""

    code: ClassVar[str] = "bad_cid"


class MultibaseError(CidError):
    """Text or bytes that are not a valid multibase string or varint."""


def b32_encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (multibase ``b`` without the prefix)."""
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def b32_decode(text: str) -> bytes:
    if not set(text) <= _B32_LOWER:
        bad = sorted(set(text) - _B32_LOWER)[0]
        raise MultibaseError(f"character {bad!r} is not in the base32 alphabet (a-z, 2-7)")
    if len(text) % 8 in (1, 3, 6):
        raise MultibaseError(f"{len(text)} base32 characters cannot encode whole bytes")
    padded = text.upper() + "=" * (-len(text) % 8)
    data = base64.b32decode(padded)
    if b32_encode(data) != text:
        raise MultibaseError("base32 text has non-zero trailing bits (not canonical)")
    return data


def b58_encode(data: bytes) -> str:
    """Bitcoin base58; leading zero bytes become leading ``1`` characters."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_B58_ALPHABET[rest])
    return "1" * zeros + "".join(reversed(digits))


def b58_decode(text: str) -> bytes:
    number = 0
    for ch in text:
        index = _B58_INDEX.get(ch)
        if index is None:
            raise MultibaseError(f"character {ch!r} is not in the base58btc alphabet")
        number = number * 58 + index
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * zeros + body


def _b16_decode(text: str) -> bytes:
    try:
        return binascii.unhexlify(text)
    except (binascii.Error, ValueError) as exc:
        raise MultibaseError(f"not valid base16: {exc}") from exc


def multibase_decode(text: str) -> bytes:
    """Decode a multibase string (prefix character + body) to bytes."""
    if not text:
        raise MultibaseError("empty string")
    prefix, body = text[0], text[1:]
    if prefix == "b":
        return b32_decode(body)
    if prefix == "B" and body == body.upper():
        return b32_decode(body.lower())
    if prefix == "z":
        return b58_decode(body)
    if prefix in "fF" and body == (body.lower() if prefix == "f" else body.upper()):
        return _b16_decode(body)
    raise MultibaseError(
        f"unsupported multibase prefix {prefix!r}; accepted: 'b' (base32), 'B' (BASE32), "
        "'z' (base58btc), 'f'/'F' (base16)"
    )


def varint_encode(value: int) -> bytes:
    """Unsigned LEB128, the multiformats ``unsigned-varint``."""
    if value < 0:
        raise MultibaseError(f"varint cannot encode a negative number ({value})")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def varint_decode(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Return ``(value, offset after it)``. Minimal encoding only, at most 9 bytes."""
    value = shift = 0
    for i in range(offset, min(len(data), offset + MAX_VARINT_BYTES)):
        byte = data[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if byte == 0 and i > offset:
                raise MultibaseError(f"varint at byte {offset} is not minimally encoded")
            return value, i + 1
        shift += 7
    if len(data) - offset >= MAX_VARINT_BYTES:
        raise MultibaseError(f"varint at byte {offset} is longer than {MAX_VARINT_BYTES} bytes")
    raise MultibaseError(f"varint at byte {offset} is truncated (input ends mid-varint)")
