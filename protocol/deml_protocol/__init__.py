"""The DeML wire protocol, shared by the machine and every client (stdlib + eth-abi only).

``inputs`` (every advance input), ``notices`` (notice layouts), ``outputs`` (Cartesi output
encodings), ``commitments`` (sealed submissions and shards), ``cid`` (content ids),
``uploads`` (blob-upload inputs), ``addresses`` and ``limits``.
"""

__all__ = ["addresses", "cid", "commitments", "inputs", "limits", "notices", "outputs", "uploads"]
