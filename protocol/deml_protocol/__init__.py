"""The DeML wire protocol, shared by the machine and every client (stdlib + eth-abi only).

``inputs`` (every advance input), ``queries`` (every inspect path and its reply),
``errors`` (every rejection code, grouped by cause), ``notices`` (notice layouts),
``outputs`` (Cartesi output encodings), ``metrics`` (metric names), ``commitments`` (sealed
submissions and shards), ``cid`` (content ids), ``uploads`` (blob-upload inputs),
``addresses`` and ``limits``.
"""

__all__ = [
    "addresses",
    "cid",
    "commitments",
    "errors",
    "inputs",
    "limits",
    "metrics",
    "notices",
    "outputs",
    "queries",
    "uploads",
]
