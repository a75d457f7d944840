"""The DeML DApp: everything that runs inside the Cartesi Machine (``python -m dapp``).

Start at ``app`` (where an input goes) and ``inspector`` (where a query goes). The imports
form a chain, each layer using only the ones before it (``docs/architecture.md`` has the map):

1. ``records`` (frozen state records, ``Amount``/``Score``) and ``config``
2. ``state`` (the tables, transactions, the digest)
3. ``context`` (what a handler sees of one input)
4. rules, one idea per module: ``ledger`` (balances, withdrawals), ``blobs`` (chunked
   uploads), ``jobs`` + ``job_spec`` (posting), ``rounds`` (commit and reveals),
   ``settlement`` (closing: acceptance, payouts, aggregation), ``scoring`` (the ``evaluate``
   input and the scorer cache), with the model machinery beneath them: ``onnx_checks``,
   ``work_budget``, ``evaluation``, ``metrics``, ``shards``, ``fedavg``, ``payouts``
5. ``views`` (inspect replies), ``router`` / ``inspector`` (dispatch), ``app``, ``service``

Only ``rollup`` speaks HTTP. Error codes, input signatures, notices and queries are the wire
protocol, in ``deml_protocol``.
"""

__all__ = ["app", "config", "inspector", "records", "rollup", "service", "state"]
