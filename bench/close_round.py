"""The costliest ``closeRound`` the limits admit, per aggregation rule (native time).

Run: ``.venv/bin/python -m bench.close_round [--quick]``

A close runs no evaluation (every model is scored at its reveal), but it compares every pair
of the round's revealed models for copies (``dapp.copies``) and decodes, checks and
aggregates every accepted model. Posting bounds that work (``dapp.work_budget.close_work``:
pairs, models, and weights x the rule's ``VALUE_COST``) by the work budget of one evaluation.
Each case plays one round through the real input path (``InProcessMachine``): a job whose
model is the MLP 30-H-H-2 with the largest H the rule admits for ``maxSubmissions`` models,
that many clients who commit, upload and reveal a distinct model each (all accepted, none a
copy of another, every pair compared in full), then times the ``closeRound`` input. The
cases: 256 models (the most pairs) for each rule, FedAvg also at the median's size; 64
models at about the largest stack the median admits (51 MB, ``riscv/memory.py`` measures its
RSS), FedAvg at the same size.

For scale: the MLP 30-146-146-2 on 10,000 rows, at 99.5% of the work budget, took 51 ms for
its whole ``evaluate`` input natively and 7.1-11.2 s under qemu-user (docs/machine.md);
``make riscv-memory`` times the 64-model median close under qemu next to it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from dapp import policies
from dapp.job_spec import MAX_SUBMISSIONS_PER_ROUND
from dapp.work_budget import WORK_BUDGET, close_work
from deml_console.datasets import shard_bytes
from deml_console.model_zoo import get_weights, mlp, with_weights
from deml_console.sdk import Client, MachineTransport
from deml_protocol import inputs
from deml_protocol.cid import compute_cid
from deml_protocol.commitments import holdout_commitment
from devnet.guest_server import Result
from devnet.in_process import InProcessMachine

FEATURES = 30
ROWS = 200  # holdout rows: the reveals stay cheap; the close does not depend on them
WINDOW = 7 * 24 * 3600  # room for 256 clients at 12 s per input
SPONSOR = "0x" + "5a" * 20
SALT = bytes(32)


@dataclass(frozen=True)
class Case:
    aggregation: str
    models: int
    width: int
    trim_percent: int = 0

    @property
    def values(self) -> int:
        return mlp_values(self.width)

    @property
    def work(self) -> int:
        rule = policies.AGGREGATIONS[self.aggregation]
        return close_work(self.models, self.values, rule.VALUE_COST)

    def describe(self) -> str:
        trim = f" {self.trim_percent}%" if self.trim_percent else ""
        return f"{self.aggregation}{trim}, {self.models} x MLP 30-{self.width}-{self.width}-2"


def mlp_values(width: int) -> int:
    return (FEATURES + 1) * width + (width + 1) * width + (width + 1) * 2


def widest_admitted(aggregation: str, models: int, trim_percent: int = 0) -> int:
    """The largest H whose MLP 30-H-H-2 a job with ``models`` submissions may use."""
    rule = policies.aggregation(aggregation)

    def admitted(width: int) -> bool:
        try:
            rule.check(
                trim_percent=trim_percent, max_models=models, weight_bytes=4 * mlp_values(width)
            )
        except Exception:  # noqa: BLE001 (refused: InvalidJobSpec or WorkBudgetExceeded)
            return False
        return True

    low, high = 1, 4096
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if admitted(middle) else (low, middle - 1)
    return low


def cases(quick: bool = False) -> list[Case]:
    full = MAX_SUBMISSIONS_PER_ROUND
    median = widest_admitted("median", full)
    chosen = [
        Case("median", full, median),
        Case("fedavg", full, median),
        Case("trimmed_mean", full, widest_admitted("trimmed_mean", full, 1), 1),
        Case("fedavg", full, widest_admitted("fedavg", full)),
        Case("median", 64, widest_admitted("median", 64)),
        Case("fedavg", 64, widest_admitted("median", 64)),
    ]
    return chosen[:2] if quick else chosen


def client(number: int) -> str:
    return "0x" + f"{0xC0000 + number:040x}"


def play(net: MachineTransport[Result], case: Case, *, job_id: int = 1) -> bytes:
    """One round of ``case`` up to its close, which it returns (the caller sends it)."""
    good = mlp([FEATURES, case.width, case.width, 2], seed=1)
    weights = get_weights(good)
    last = f"W{len(weights) // 2 - 1}", f"B{len(weights) // 2 - 1}"
    # The job's model predicts the opposite class of ``good``: every client beats it.
    initial = with_weights(
        good, {last[0]: weights[last[0]][:, ::-1], last[1]: weights[last[1]][::-1]}
    )
    rng = np.random.default_rng(0)
    X = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    session = ort.InferenceSession(good, providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {session.get_inputs()[0].name: X})[0]
    shard = shard_bytes(X, np.argmax(probabilities, axis=1).astype(np.int64))
    sponsor = Client(net, SPONSOR)
    sponsor.upload(initial)
    spec = {
        "modelCid": compute_cid(initial),
        "recipe": "{}",
        "metric": "accuracy",
        "holdoutRows": ROWS,
        "holdoutCommitments": [holdout_commitment(compute_cid(shard), SALT)],
        "commitSeconds": WINDOW,
        "holdoutSeconds": WINDOW,
        "revealSeconds": WINDOW,
        "minGain": 1,
        "maxSubmissions": case.models,
        "commitBond": 0,
        "payout": "equal",
        "aggregation": case.aggregation,
        "trimPercent": case.trim_percent,
    }
    assert sponsor.create_job(spec, 10**18) == job_id
    models = []
    for number in range(case.models):  # distinct: noise far beyond the copy tolerance
        noise = np.random.default_rng(number + 1)
        moved = {
            k: v + noise.normal(0, 1e-3, v.shape).astype(np.float32) for k, v in weights.items()
        }
        models.append(with_weights(good, moved))
        _ok(Client(net, client(number)).commit(job_id, 0, compute_cid(models[-1]), SALT))
    net.send(SPONSOR, b"\0\0\0\0", advance_time=WINDOW)  # rejected: only time passes
    sponsor.upload(shard)
    _ok(sponsor.reveal_holdout(job_id, 0, compute_cid(shard), SALT))
    for number, model in enumerate(models):
        me = Client(net, client(number))
        _ok(me.reveal_model(job_id, 0, me.upload(model), SALT))
    net.send(SPONSOR, b"\0\0\0\0", advance_time=2 * WINDOW)
    return inputs.CLOSE_ROUND.encode(job_id, 0)


def _ok(outcome: object) -> None:
    status = getattr(outcome, "status", None)
    if status != "accepted":
        raise SystemExit(f"an input of the round was {status}: {outcome!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the first two cases only")
    args = parser.parse_args()
    print(f"work budget {WORK_BUDGET:.2e}; native seconds of the closeRound input")
    header = f"{'case':<40}{'weights':>9}{'stack MB':>10}{'work':>10}{'% budget':>10}"
    print(header + f"{'close s':>9}{'round s':>9}")
    for case in cases(args.quick):
        with InProcessMachine() as machine:
            net: MachineTransport[Result] = MachineTransport(machine)
            started = time.perf_counter()
            close = play(net, case)
            round_s = time.perf_counter() - started
            started = time.perf_counter()
            result = net.send(SPONSOR, close)
            close_s = time.perf_counter() - started
        if result.status != "accepted":
            raise SystemExit(f"{case.describe()}: close {result.status}: {result.reports!r}")
        stack = case.models * case.values * 4 / 1e6
        print(
            f"{case.describe():<40}{case.values:>9,}{stack:>10.1f}{case.work:>10.2e}"
            f"{100 * case.work / WORK_BUDGET:>10.1f}{close_s:>9.2f}{round_s:>9.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
