"""What happened to a job, read back from the node: each closed round's ``RoundClosed`` notice
(scores, who was paid how much, the refund)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .node_outputs import NodeOutput, OutputReader
from .sdk.node import NodeTransport

__all__ = ["closed_rounds", "payouts_by_client", "round_closed_outputs", "round_results"]


def round_closed_outputs(reader: OutputReader) -> list[NodeOutput]:
    """Every ``RoundClosed`` notice (all jobs), in output order."""
    return [o for o in reader.outputs() if o.notice is not None and o.notice.name == "RoundClosed"]


def closed_rounds(transport: NodeTransport) -> list[dict[str, Any]]:
    """Every ``RoundClosed`` notice's fields (all jobs), in output order, from the node."""
    found = round_closed_outputs(OutputReader(transport))
    return [o.notice.fields for o in found if o.notice is not None]


def round_results(transport: NodeTransport, job_id: int) -> dict[int, dict[str, Any]]:
    """Each closed round's ``RoundClosed`` fields, by round."""
    return {
        int(fields["round"]): fields
        for fields in closed_rounds(transport)
        if int(fields["jobId"]) == job_id
    }


def payouts_by_client(results: dict[int, dict[str, Any]]) -> dict[str, int]:
    """What each address was paid over the job's rounds (the sponsor's refunds apart)."""
    paid: dict[str, int] = defaultdict(int)
    for fields in results.values():
        for who, amount in zip(fields["paid"], fields["amounts"], strict=True):
            paid[str(who).lower()] += int(amount)
    return dict(paid)
