"""ABI call dispatch: 4-byte selector -> typed handler.

A handler is ``handle_x(ctx, **decoded_args)``; the argument names are the ABI parameter
names of its :class:`~deml_protocol.abi.Method`. Decoding is strict, and every way a payload
can fail to be a call we know is a named rejection.
"""

from __future__ import annotations

from collections.abc import Callable

from eth_abi.exceptions import DecodingError

from deml_protocol.abi import Method
from deml_protocol.errors import BadAbi, EmptyPayload, UnknownSelector

from .context import Context

Handler = Callable[..., None]


class Router:
    def __init__(self) -> None:
        self._routes: dict[bytes, tuple[Method, Handler]] = {}

    def add(self, method: Method, handler: Handler) -> None:
        if method.selector in self._routes:
            raise ValueError(f"{method.signature} is already routed")
        self._routes[method.selector] = (method, handler)

    def methods(self) -> list[Method]:
        return [method for method, _ in self._routes.values()]

    def dispatch(self, ctx: Context, payload: bytes) -> None:
        method, handler = self._lookup(payload)
        try:
            args = method.decode_args(payload[4:])
        except (DecodingError, OverflowError, ValueError) as exc:
            raise BadAbi(f"payload is not a valid {method.signature} call: {exc}") from exc
        if method.encode(**args) != payload:
            # One spelling per call: no trailing bytes, no odd offsets or padding.
            raise BadAbi(
                f"payload is not the canonical ABI encoding of a {method.signature} "
                "call (trailing or non-standard bytes)"
            )
        handler(ctx, **args)

    def _lookup(self, payload: bytes) -> tuple[Method, Handler]:
        if not payload:
            raise EmptyPayload("the input payload is empty; send an ABI-encoded call")
        if len(payload) < 4:
            raise UnknownSelector(f"payload of {len(payload)} bytes has no 4-byte selector")
        route = self._routes.get(payload[:4])
        if route is None:
            known = ", ".join(sorted(m.signature for m in self.methods()))
            raise UnknownSelector(f"no input with selector 0x{payload[:4].hex()}; known: {known}")
        return route
