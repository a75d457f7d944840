"""The policies a job chooses at posting: a payout policy and an aggregation rule.

Flower's strategy idea at our scale: a round's close asks the job's **payout policy** which
of the round's scored, original models it accepts (``accept``) and how the budget is split
among them (``split``), then asks its **aggregation rule** for the next global model made
of those (``aggregate``). Each policy is one pure module that provides the functions of
:class:`PayoutPolicy` or :class:`AggregationRule`; this module only names them.

To add one: write ``payout_<name>.py`` or ``aggregate_<name>.py`` with those functions
(integers for money; aggregation bit-for-bit reproducible across platforms), add it below,
document it in ``docs/protocol.md`` §4.5 and test it in ``tests/test_policies.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Final, Protocol

from deml_protocol.errors import UnknownPolicy

from . import (
    aggregate_fedavg,
    aggregate_median,
    aggregate_trimmed_mean,
    payout_equal,
    payout_proportional,
)
from .onnx_checks import ParsedModel
from .records import Amount

__all__ = ["AGGREGATIONS", "PAYOUTS", "AggregationRule", "PayoutPolicy", "aggregation", "payout"]


class PayoutPolicy(Protocol):
    def accept(self, gains: Sequence[int], *, min_gain: int) -> list[bool]:
        """One flag per original model of the round, from its gain over the baseline."""
        ...

    def split(self, budget: Amount, gains: Sequence[int]) -> tuple[list[Amount], Amount]:
        """Shares of the accepted (in order) and the remainder: ``sum + remainder == budget``."""
        ...


class AggregationRule(Protocol):
    @property
    def VALUE_COST(self) -> int:  # noqa: N802 (a module constant)
        """Work units per weight and accepted model at a close (``work_budget.close_work``)."""
        ...

    def check(self, *, trim_percent: int, max_models: int, weight_bytes: int) -> None:
        """At posting: refuse parameters, or a round's worth of models, the rule cannot take:
        too large to hold, or too costly to close within the work budget
        (``work_budget.check_close_budget`` with the rule's cost per weight and model)."""
        ...

    def aggregate(
        self, base: ParsedModel, models: Iterable[ParsedModel], *, count: int, trim_percent: int
    ) -> bytes:
        """The next global model's bytes, from ``count`` accepted models (``count >= 1``)."""
        ...


PAYOUTS: Final[Mapping[str, PayoutPolicy]] = MappingProxyType(
    {"proportional": payout_proportional, "equal": payout_equal}
)
AGGREGATIONS: Final[Mapping[str, AggregationRule]] = MappingProxyType(
    {
        "fedavg": aggregate_fedavg,
        "median": aggregate_median,
        "trimmed_mean": aggregate_trimmed_mean,
    }
)


def payout(name: str) -> PayoutPolicy:
    if name not in PAYOUTS:
        raise UnknownPolicy(f"payout {name!r} is not a payout policy; one of {', '.join(PAYOUTS)}")
    return PAYOUTS[name]


def aggregation(name: str) -> AggregationRule:
    if name not in AGGREGATIONS:
        raise UnknownPolicy(
            f"aggregation {name!r} is not an aggregation rule; one of {', '.join(AGGREGATIONS)}"
        )
    return AGGREGATIONS[name]
