"""Why an input is rejected.

Every kind of rejected input is one subclass of :class:`Rejected` with a stable snake_case
``code``, declared where the rule lives (``dapp.ledger``, ``dapp.blobs``, ...). Codes are
never reused; ``Rejected.registry()`` lists them all and a test checks each is documented in
``docs/protocol.md``. The rejection report is ``{"error": code, "detail": message}``.

Anything that is not a ``Rejected`` is a bug: the input is rejected with ``internal_error``
and the traceback is logged.
"""

from __future__ import annotations

from typing import Any, ClassVar

_REGISTRY: dict[str, type[Rejected]] = {}


class Rejected(Exception):
    """An input broke a rule; the message says what was wrong and what would be accepted."""

    code: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if not isinstance(code, str) or not code:
            raise TypeError(f"{cls.__name__} must declare a string `code`")
        if code in _REGISTRY and _REGISTRY[code] is not cls:
            raise TypeError(f"error code {code!r} already used by {_REGISTRY[code].__name__}")
        _REGISTRY[code] = cls

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def as_report(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}

    @staticmethod
    def registry() -> dict[str, type[Rejected]]:
        """Every code declared so far (import the modules that declare them first)."""
        return dict(_REGISTRY)


class InternalError(Rejected):
    """A bug in the DApp, not in the input. The traceback goes to the log."""

    code = "internal_error"


class PayloadTooLarge(Rejected):
    code = "payload_too_large"


class EmptyPayload(Rejected):
    code = "empty_payload"


class UnknownSelector(Rejected):
    code = "unknown_selector"


class BadAbi(Rejected):
    code = "bad_abi"


class BadArgument(Rejected):
    """An argument decoded but its value is out of range or malformed (e.g. a bad address)."""

    code = "bad_argument"


class WrongSender(Rejected):
    """The input must come from a specific address (e.g. a portal) and did not."""

    code = "wrong_sender"


class NotFound(Rejected):
    """An inspect path that names nothing (unknown query or missing item)."""

    code = "not_found"
