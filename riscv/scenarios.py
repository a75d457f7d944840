"""The inputs the riscv64 check replays, each set generated through the code path it names.

- ``demo``: the exact inputs of ``make demo``: ``demo.run`` on a real devnet (anvil, the Rollups
  contracts, the host-mode node), read back from the node's store with what the node stored.
- ``state-machine-*``: runs of the test suite's state machine (``tests/test_state_machine.py``,
  the ``make test`` profile: fixed seed), the most varied ones.
- ``operators``: uploads and ``evaluate`` inputs covering every allowed ONNX operator
  (``dapp.onnx_checks.ALLOWED_OPERATORS``) and every metric (``Metric``), saturated sigmoids,
  10,000-row shards, an MLP evaluation at 100% of the work budget and one just past it.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from eth_abi.abi import encode
from onnx import TensorProto, helper, numpy_helper

from deml_protocol import addresses, inputs
from deml_protocol.abi import selector_of
from deml_protocol.metrics import Metric
from deml_protocol.uploads import upload_inputs
from devnet.contracts import EVM_ADVANCE
from devnet.replay import Claim, RecordedInput, claims_from_store, inputs_from_store

APP = "0x" + "ab" * 20
SENDER = "0x" + "5e" * 20
ROWS_AT_BUDGET = 10_000
F32 = np.float32


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    env: Mapping[str, str]  # the DApp's DEML_* settings for this scenario
    inputs: list[RecordedInput]
    claims: list[Claim] = field(default_factory=list)
    #: Input index -> its row in the timing table, where the kind alone would hide it.
    labels: Mapping[int, str] = field(default_factory=dict)


def encode_evm_advance(meta: Mapping[str, Any], payload: bytes) -> bytes:
    """The InputBox's encoding of an input, as a node stores it."""
    values = [
        meta["chain_id"],
        meta["app_contract"],
        meta["msg_sender"],
        meta["block_number"],
        meta["block_timestamp"],
        int(meta["prev_randao"], 16),
        meta["input_index"],
        payload,
    ]
    types = ["uint256", "address", "address", "uint256", "uint256", "uint256", "uint256", "bytes"]
    return selector_of(EVM_ADVANCE) + encode(types, values)


def kind_of(sender: str, payload: bytes) -> str:
    """The input's kind for the timing table: its method, or the portal it came through."""
    if sender == addresses.ETHER_PORTAL.lower():
        return "ether deposit"
    if sender == addresses.ERC20_PORTAL.lower():
        return "erc20 deposit"
    for method in inputs.ALL_INPUTS:
        if payload[:4] == method.selector:
            return method.name
    return "unknown call"


# ---- demo ------------------------------------------------------------------------------------
def demo_scenario() -> Scenario:
    """Runs ``make demo``'s story on a fresh devnet (quietly) and takes the node's record."""
    from rich.console import Console

    from demo.__main__ import Terminal, inside, run
    from devnet.stack import Devnet, DevnetConfig

    with tempfile.TemporaryDirectory(prefix="deml-riscv-demo-") as state:
        workdir = Path(state)
        config = DevnetConfig(state_dir=workdir / ".devnet", port=0, epoch_length=20)
        with Devnet(config) as devnet, inside(workdir), contextlib.redirect_stdout(io.StringIO()):
            run(devnet, Terminal(workdir, Console()))
            assert devnet.node is not None
            devnet.node.wait_until(lambda: bool(devnet.node and devnet.node.store.claims()))
            store = devnet.node.store
            return Scenario("demo", {}, inputs_from_store(store), claims_from_store(store))


# ---- the state machine of the test suite --------------------------------------------------
def state_machine_scenarios(examples: int, keep: int) -> list[Scenario]:
    """The first ``examples`` runs of the ``make test`` profile; the ``keep`` that together
    cover the most (input kind, status) pairs, then the longest."""
    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test

    from tests import test_state_machine as sm

    runs: list[list[tuple[dict[str, Any], bytes, str]]] = []

    class Recording(sm.DAppMachine):
        def teardown(self) -> None:
            self.machine.stop()  # the suite checks replay itself; here we only record
            statuses = [r.status for r in self.net.results]
            runs.append([(m, p, s) for (m, p), s in zip(self.net.log, statuses, strict=True)])

    run_state_machine_as_test(Recording, settings=settings(sm.PROFILE, max_examples=examples))
    chosen = _most_varied(runs, keep)
    return [
        Scenario(
            f"state-machine-{number}",
            dict(sm.ENV),
            [_recorded(meta, payload) for meta, payload, _ in runs[number]],
        )
        for number in chosen
    ]


def _most_varied(
    runs: Sequence[Sequence[tuple[dict[str, Any], bytes, str]]], keep: int
) -> list[int]:
    covers = [{(kind_of(m["msg_sender"], p), s) for m, p, s in run} for run in runs]
    chosen: list[int] = []
    seen: set[tuple[str, str]] = set()
    while len(chosen) < min(keep, len(runs)):
        best = max(
            (i for i in range(len(runs)) if i not in chosen),
            key=lambda i: (len(covers[i] - seen), len(runs[i])),
        )
        chosen.append(best)
        seen |= covers[best]
    return sorted(chosen)


def _recorded(meta: Mapping[str, Any], payload: bytes) -> RecordedInput:
    raw = encode_evm_advance(meta, payload)
    return RecordedInput(int(meta["input_index"]), int(meta["block_number"]), raw, None)


# ---- every operator, every metric, the work budget --------------------------------------------
@dataclass
class _Inputs:
    """Inputs with increasing index, block and time, as a chain would number them."""

    inputs: list[RecordedInput] = field(default_factory=list)
    timestamp: int = 1_700_000_000

    def send(self, payload: bytes, sender: str = SENDER) -> int:
        index = len(self.inputs)
        self.timestamp += 12
        meta = {
            "chain_id": 31337,
            "app_contract": APP,
            "msg_sender": sender,
            "block_number": 100 + index,
            "block_timestamp": self.timestamp,
            "prev_randao": "0x" + "00" * 32,
            "input_index": index,
        }
        self.inputs.append(_recorded(meta, payload))
        return index

    def upload(self, data: bytes) -> str:
        cid, payloads = upload_inputs(data)
        for payload in payloads:
            self.send(payload)
        return cid


@dataclass(frozen=True, slots=True)
class OperatorMaterial:
    X: npt.NDArray[np.float32]  # the 10,000-row features every shard takes rows from
    shards: dict[str, bytes]
    models: dict[str, tuple[bytes, str, list[Metric]]]  # name -> (model, shard, metrics)


def operator_material() -> OperatorMaterial:
    from deml_console.datasets import shard_bytes
    from deml_console.model_zoo import linear_regression, logistic_regression, mlp

    rng = np.random.default_rng(12)
    features = 30
    X = rng.normal(size=(ROWS_AT_BUDGET, features)).astype(F32)
    truth = rng.normal(size=features)
    logit = X @ truth
    shards = {
        "binary": shard_bytes(X, (logit > 0).astype(np.int64)),
        "three": shard_bytes(X[:2000], np.digitize(logit[:2000], [-1.0, 1.0]).astype(np.int64)),
        "target": shard_bytes(X[:2000], logit[:2000] + rng.normal(size=2000) * 0.1),
    }
    models: dict[str, tuple[bytes, str, list[Metric]]] = {
        # every operator but Sigmoid and Clip, softmax head
        "all-ops": (every_operator_model(features, rng), "binary", _classification()),
        # Clip then Sigmoid; x20 weights saturate the sigmoid (logits far below -18)
        "clip-sigmoid": (clip_sigmoid_model(truth * 20, rng), "binary", _classification()),
        "saturated-logistic": (logistic_regression(truth * 30), "binary", _classification()),
        "softmax-3": (mlp([features, 16, 3], seed=3), "three", [Metric.ACCURACY, Metric.LOG_LOSS]),
        "linear": (linear_regression(truth + 0.05), "target", _regression()),
        "mlp-linear-head": (mlp([features, 32, 1], seed=4, head="linear"), "target", _regression()),
    }
    width = widest_mlp_within_budget(features, ROWS_AT_BUDGET)
    models["mlp-at-budget"] = (
        mlp([features, width, width, 2], seed=5),
        "binary",
        [Metric.LOG_LOSS],
    )
    models["mlp-past-budget"] = (
        mlp([features, width + 1, width + 1, 2], seed=5),
        "binary",
        [Metric.ACCURACY],
    )
    return OperatorMaterial(X, shards, models)


def operator_scenario(material: OperatorMaterial) -> Scenario:
    net = _Inputs()
    shards = {name: net.upload(data) for name, data in material.shards.items()}
    labels = {}
    for name, (model, shard, metrics) in material.models.items():
        cid = net.upload(model)
        for metric in metrics:
            index = net.send(inputs.EVALUATE.encode(cid, shards[shard], metric.value))
            if name.startswith("mlp-"):
                labels[index] = f"evaluate {name}"
    return Scenario("operators", {}, net.inputs, labels=labels)


def _classification() -> list[Metric]:
    return [m for m in Metric if m.is_classification]


def _regression() -> list[Metric]:
    return [m for m in Metric if not m.is_classification]


def widest_mlp_within_budget(features: int, rows: int) -> int:
    """The largest H such that an MLP features-H-H-2 on ``rows`` rows fits the work budget:
    that evaluation costs 100% of the budget less under one width step."""
    from dapp.evaluation import Scorer
    from dapp.onnx_checks import parse_model
    from dapp.work_budget import ROW_OVERHEAD, WORK_BUDGET
    from deml_console.model_zoo import mlp

    def work(width: int) -> int:
        row_cost = Scorer.compile(parse_model(mlp([features, width, width, 2], seed=0))).row_cost
        return rows * (row_cost + ROW_OVERHEAD)

    low, high = 1, 1024
    while low < high:  # work() grows with the width
        middle = (low + high + 1) // 2
        low, high = (middle, high) if work(middle) <= WORK_BUDGET else (low, middle - 1)
    return low


def _model(
    nodes: list[Any], inits: Mapping[str, npt.NDArray[Any]], features: int, output: str, width: int
) -> bytes:
    graph = helper.make_graph(
        nodes,
        "deml",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", width])],
        initializer=[numpy_helper.from_array(value, name) for name, value in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return bytes(model.SerializeToString(deterministic=True))


def every_operator_model(features: int, rng: np.random.Generator) -> bytes:
    """Flatten, MatMul, Add, Relu, Gemm, LeakyRelu, Sub, Mul, Div, Tanh, Identity, Reshape,
    Gemm, Softmax: a two-class network that uses each allowed operator but Sigmoid and Clip."""
    node = helper.make_node
    weights: Callable[..., npt.NDArray[Any]] = lambda *shape: (  # noqa: E731
        rng.normal(size=shape) / np.sqrt(shape[0])
    ).astype(F32)
    nodes = [
        node("Flatten", ["X"], ["flat"], axis=1),
        node("MatMul", ["flat", "W1"], ["m1"]),
        node("Add", ["m1", "B1"], ["a1"]),
        node("Relu", ["a1"], ["r1"]),
        node("Gemm", ["r1", "W2", "B2"], ["g2"]),
        node("LeakyRelu", ["g2"], ["l2"], alpha=0.1),
        node("Sub", ["l2", "C"], ["s2"]),
        node("Mul", ["s2", "S"], ["p2"]),
        node("Div", ["p2", "D"], ["d2"]),
        node("Tanh", ["d2"], ["t2"]),
        node("Identity", ["t2"], ["i2"]),
        node("Reshape", ["i2", "shape"], ["h2"]),
        node("Gemm", ["h2", "W3", "B3"], ["logits"]),
        node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    inits = {
        "W1": weights(features, 16),
        "B1": weights(16),
        "W2": weights(16, 16),
        "B2": weights(16),
        "C": weights(16),
        "S": np.full(16, 1.5, F32),
        "D": np.full(16, 0.75, F32),
        "shape": np.array([0, 16], np.int64),
        "W3": weights(16, 2) * 4,
        "B3": weights(2),
    }
    return _model(nodes, inits, features, "probabilities", 2)


def clip_sigmoid_model(coef: npt.NDArray[Any], rng: np.random.Generator) -> bytes:
    """Gemm, Clip (its bounds as inputs, opset 13+), Sigmoid: a logistic regression whose
    logits are clipped to [-40, 40] then squashed."""
    node = helper.make_node
    nodes = [
        node("Gemm", ["X", "W", "B"], ["logit"]),
        node("Clip", ["logit", "low", "high"], ["clipped"]),
        node("Sigmoid", ["clipped"], ["probabilities"]),
    ]
    inits = {
        "W": np.asarray(coef, F32).reshape(-1, 1),
        "B": np.asarray([rng.normal()], F32),
        "low": np.array(-40.0, F32),
        "high": np.array(40.0, F32),
    }
    return _model(nodes, inits, len(coef), "probabilities", 1)
