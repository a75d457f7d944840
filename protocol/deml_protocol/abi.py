"""ABI-encoded calls: a 4-byte selector (keccak of the signature) then ``abi.encode(args)``.

These are the same bytes ``cast calldata`` produces, so any Ethereum tool can build DeML
inputs (send them as hex; see docs/protocol.md §1.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import decode, encode
from eth_hash.auto import keccak


def keccak256(data: bytes) -> bytes:
    """keccak-256 (Ethereum's hash), not NIST SHA3-256."""
    return bytes(keccak(data))


def selector_of(signature: str) -> bytes:
    return keccak256(signature.encode())[:4]


@dataclass(frozen=True, slots=True)
class Method:
    """One ABI function: its name and ``(argument name, ABI type)`` pairs."""

    name: str
    params: tuple[tuple[str, str], ...]
    selector: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "selector", selector_of(self.signature))

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(abi_type for _, abi_type in self.params)

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.params)

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.types)})"

    def encode(self, *args: Any, **kwargs: Any) -> bytes:
        """Selector + ``abi.encode(args)``; arguments by position or by name."""
        values = list(args) + [kwargs[name] for name in self.arg_names[len(args) :]]
        if len(values) != len(self.params):
            raise TypeError(f"{self.signature} takes {len(self.params)} arguments")
        return self.selector + encode(list(self.types), values)

    def decode_args(self, body: bytes) -> dict[str, Any]:
        """Decode the bytes after the selector (strict: eth-abi's default)."""
        values = decode(list(self.types), body)
        return dict(zip(self.arg_names, values, strict=True))


def method(name: str, *params: tuple[str, str]) -> Method:
    return Method(name, tuple(params))
