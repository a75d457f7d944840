"""The local development stack: anvil, the Cartesi Rollups contracts and a host-mode node.

``python -m devnet up`` runs it all (``stack``). The chain side is ``anvil``, ``chain``,
``contracts``, ``solidity`` and ``merkle``; the node side is ``host_machine`` +
``guest_server`` (the DApp behind the machine's guest API), ``node`` (follow, process,
claim), ``store`` (SQLite) and ``api`` + ``rpc`` (inspect and node v2 JSON-RPC).
"""

__all__ = ["api", "chain", "contracts", "host_machine", "node", "stack"]
