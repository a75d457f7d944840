"""The ``deml`` console for sponsors and clients: ``cli`` (the command), ``stores`` (off-chain
blob stores), ``model_zoo`` (ONNX models from numpy), ``training`` (local training) and
``datasets`` (example federations and the shard format); ``sdk`` is the client library
(transports to the DApp, the user flows, decoded results)."""

__all__ = ["cli", "datasets", "model_zoo", "sdk", "stores", "training"]
