"""Below the scores: the raw ONNX Runtime outputs of the check's models, x86_64 against riscv64.

The DApp's outputs must be identical; the floats under them need not be (different kernels).
This runs each operator-scenario model on the same 10,000 rows, with the DApp's session
options (``dapp.evaluation.session_options``, repeated: the script runs outside the DApp), on
the host and in the root, and says where the floats differ and whether they are equal once
clipped to [0, 1], as the DApp clips probabilities before any metric: the measured reason an
integer score does not move.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .root import ROOT_ENV
from .scenarios import OperatorMaterial

#: Runs on both sides: the host's .venv and the root's Debian python3.
SCRIPT = """
import sys, numpy as np, onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
options.enable_cpu_mem_arena = False
options.enable_mem_pattern = False
options.log_severity_level = 3
folder, side = sys.argv[1], sys.argv[2]
X = np.load(folder + "/X.npy")
for name in sys.argv[3:]:
    model = open(f"{folder}/{name}.onnx", "rb").read()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    np.save(f"{folder}/{name}.{side}.npy", session.run(None, {"X": X})[0])
"""


@dataclass(frozen=True, slots=True)
class RawComparison:
    model: str
    values: int
    differing: int
    max_abs: float
    equal_when_clipped: bool

    def __str__(self) -> str:
        if not self.differing:
            return f"{self.model}: {self.values} values bit-identical"
        clipped = "identical" if self.equal_when_clipped else "STILL DIFFERENT"
        return (
            f"{self.model}: {self.differing} of {self.values} values differ (at most "
            f"{self.max_abs:.3g}); clipped to [0, 1]: {clipped}"
        )


def compare_raw_outputs(root: Path, python: str, material: OperatorMaterial) -> list[RawComparison]:
    # Only the models that run on the 10,000-row X (the one past the budget never runs).
    names = [n for n, (_, shard, _) in material.models.items() if shard == "binary"]
    names = [n for n in names if not n.endswith("past-budget")]
    with tempfile.TemporaryDirectory(prefix="deml-raw-", dir=root / "tmp") as folder:
        work = Path(folder)
        np.save(work / "X.npy", material.X)
        (work / "run.py").write_text(SCRIPT)
        for name in names:
            (work / f"{name}.onnx").write_bytes(material.models[name][0])
        inside = "/" + str(work.relative_to(root))
        subprocess.run([python, str(work / "run.py"), str(work), "host", *names], check=True)
        subprocess.run(
            ["chroot", str(root), *ROOT_ENV, "python3", f"{inside}/run.py", inside, "root"] + names,
            check=True,
            stderr=subprocess.DEVNULL,  # Debian's onnx prints harmless schema warnings
        )
        found = []
        for name in names:
            host, guest = np.load(work / f"{name}.host.npy"), np.load(work / f"{name}.root.npy")
            differ = host != guest
            found.append(
                RawComparison(
                    name,
                    int(host.size),
                    int(differ.sum()),
                    float(np.abs(host.astype(np.float64) - guest).max()),
                    bool((np.clip(host, 0, 1) == np.clip(guest, 0, 1)).all()),
                )
            )
        return found
