"""The DApp's imports form a chain of layers, with no cycle (``docs/architecture.md`` §8).

records -> state -> context -> rules -> views/dispatch -> app. A module imports only from
its own layer or lower ones, and the whole graph (type-only imports included) is acyclic,
so every record type resolves at runtime.
"""

from __future__ import annotations

import ast
import graphlib
import typing
from pathlib import Path

import pytest

from dapp.context import Context
from dapp.state import State

DAPP = Path(__file__).resolve().parent.parent / "dapp"

LAYERS: dict[str, int] = {
    # 0: leaves: records and pure machinery that knows nothing of the state
    **dict.fromkeys(["records", "config", "rollup", "metrics", "onnx_checks"], 0),
    **dict.fromkeys(["work_budget", "payouts", "shards", "fedavg", "evaluation", "copies"], 0),
    # 0: the policies a job chooses (``dapp.policies`` names them): pure, state-free
    **dict.fromkeys(["policies", "payout_proportional", "payout_equal", "coordinatewise"], 0),
    **dict.fromkeys(["aggregate_fedavg", "aggregate_median", "aggregate_trimmed_mean"], 0),
    "state": 1,
    **dict.fromkeys(["context", "snapshot"], 2),
    # 3: the rules
    **dict.fromkeys(["ledger", "storage", "blobs", "scoring", "job_spec", "jobs", "rounds"], 3),
    "settlement": 3,
    # 4: reading the state and dispatching to the rules
    **dict.fromkeys(["views", "router", "inspector"], 4),
    **dict.fromkeys(["app", "service", "__main__", "__init__"], 5),
}


def dapp_imports() -> dict[str, set[str]]:
    """module -> the dapp modules it imports (relative imports, type-only ones included)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(DAPP.glob("*.py")):
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module] if node.module else [a.name for a in node.names]
                found |= {name.split(".")[0] for name in names}
        graph[path.stem] = found
    return graph


def test_every_module_has_a_layer() -> None:
    assert set(dapp_imports()) == set(LAYERS)


def test_imports_go_down_the_layers_and_never_cycle() -> None:
    graph = dapp_imports()
    upward = [(m, d) for m, deps in graph.items() for d in deps if LAYERS[d] > LAYERS[m]]
    assert not upward, f"imports up the layers: {upward}"
    list(graphlib.TopologicalSorter(graph).static_order())  # raises CycleError on a cycle


def test_records_is_a_leaf() -> None:
    assert dapp_imports()["records"] == set()
    assert dapp_imports()["state"] == {"records"}


@pytest.mark.parametrize("cls", [State, Context])
def test_type_hints_resolve_at_runtime(cls: type) -> None:
    hints = typing.get_type_hints(cls)
    assert hints and all(hint is not None for hint in hints.values())
