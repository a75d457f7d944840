"""The ``deml`` console for sponsors and clients: ``cli`` (the command), ``stores`` (off-chain
blob stores), ``model_zoo`` (ONNX models from numpy), ``training`` (local training) and
``datasets`` (example federations and the shard format)."""

__all__ = ["cli", "datasets", "model_zoo", "stores", "training"]
