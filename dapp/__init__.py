"""The DeML DApp: everything that runs inside the Cartesi Machine (``python -m dapp``).

Start at ``app`` (where an input goes). The rules live one idea per module: ``ledger``
(balances, withdrawals), ``blobs`` (chunked uploads), ``jobs`` and ``rounds`` (the
marketplace), ``scoring``/``evaluation``/``metrics``/``onnx_checks``/``shards``/``fedavg``
(models), ``payouts`` (integer splits). Only ``rollup`` speaks HTTP.
"""

__all__ = ["app", "config", "errors", "rollup", "service", "state"]
