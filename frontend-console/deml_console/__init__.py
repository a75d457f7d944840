"""The ``deml`` console for sponsors, data owners and anyone verifying or settling.

Where a command goes: ``cli`` (the app, global options, errors) -> ``commands/<kind of
user>.py`` (``sponsor``, ``data_owner``, ``anyone``, ``settle``, ``account``, ``config``,
``devnet``) -> ``session`` (``settings`` + ``accounts`` -> a checked connection) -> ``sdk``
(the client library: transports, user flows, decoded results) -> the node and the chain.
``output`` prints results (Rich, or ``--json``).

What the commands build on: ``job_spec`` (job create's options), ``workspace`` (local
secrets), ``phases`` (round windows, waiting), ``submitting`` (commit, upload, reveal),
``sklearn_training`` and ``external_trainers`` (training), ``job_history``, ``job_views`` and
``plots`` (reading and showing a job), ``assets`` (amounts), ``calls`` (raw inputs),
``node_outputs``, ``verify`` and ``aggregation`` (settling and checking). Older pieces:
``stores`` (off-chain blob stores), ``car``, ``model_zoo`` (ONNX models from numpy),
``training`` (numpy gradient descent), ``datasets`` (example data, the shard format).
"""

#: The map's entry points (each module's docstring leads on).
__all__ = [
    "cli",
    "commands",
    "datasets",
    "model_zoo",
    "sdk",
    "session",
    "settings",
    "stores",
    "submitting",
    "training",
]
