"""The DeML DApp: everything that runs inside the Cartesi Machine (``python -m dapp``).

Start at ``app`` (where an input goes) and ``inspector`` (where a query goes). The imports
form a chain of layers: a module imports from its own layer or earlier ones, never later, and
never in a cycle (``docs/architecture.md`` §8 has the map, ``tests/test_layers.py`` checks):

0. ``records`` (frozen state records, ``Amount``/``Score``), ``config``, ``rollup``, and the
   machinery that knows nothing of the state: ``onnx_checks``, ``work_budget``,
   ``evaluation``, ``metrics``, ``shards``, ``fedavg``, ``payouts``
1. ``state`` (the tables, transactions, the digest)
2. ``context`` (what a handler sees of one input), ``snapshot`` (the state to and from a
   canonical file, for the host's restarts)
3. the rules, one idea per module: ``ledger`` (balances, withdrawals), ``blobs`` (chunked
   uploads), ``jobs`` + ``job_spec`` (posting), ``rounds`` (commit and reveals),
   ``settlement`` (closing: acceptance, payouts, aggregation), ``scoring`` (the ``evaluate``
   input and the scorer cache)
4. ``views`` (inspect replies), ``router`` / ``inspector`` (dispatch)
5. ``app``, ``service``

Only ``rollup`` speaks HTTP. Error codes, input signatures, notices and queries are the wire
protocol, in ``deml_protocol``.
"""

__all__ = ["app", "config", "inspector", "records", "rollup", "service", "state"]
