"""The strategy simulator: which strategies pay, played through the DApp's real input path.

Every scenario is one whole job (two rounds) on the DApp in process (``InProcessMachine``:
``dapp.service.serve`` behind the guest API), on a scikit-learn dataset split into a test set,
one held-out shard per round (the sponsor's) and private client data, IID or non-IID (clients
get contiguous slices of the data sorted by label or target). Three honest clients of
different data sizes (10%, 20% and 40% of the client data) train with full-batch gradient
descent from the round's global model; one strategy joins them. The same job without the
strategy is the reference.

For each strategy the table prints, over datasets, partitions and seeds:

- **payout**: what the strategy's addresses were paid, relative to the honest client of
  median data size in the reference job (1.0 = as much as honest median work; when that
  client's model won nothing there, the mean honest pay is the unit: :func:`fair_pay`),
  mean and worst case (the highest). For sponsor strategies, what its own addresses were
  paid.
- **sponsor**: the sponsor's recovery of its escrow (refunds plus payouts to addresses it
  controls), as a fraction of the escrow, mean.
- **score**: the final global model's score on the test set minus the reference job's, in
  metric units (accuracy: fraction; rmse: negated, higher is better), mean and worst.

Deterministic: the same seeds give the same table (no wall clock, seeded numpy generators).

Run: ``.venv/bin/python -m bench.incentives`` (all), ``--quick`` (one seed, two datasets);
``--payout``, ``--aggregation``, ``--trim-percent`` and ``--min-gain`` set every job's
policies (default: proportional, fedavg, minGain 1).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from eth_abi.abi import decode

from dapp.evaluation import evaluate
from dapp.shards import load_shard
from deml_console.datasets import shard_bytes
from deml_console.model_zoo import (
    get_weights,
    linear_regression,
    logistic_regression,
    softmax_regression,
    with_weights,
)
from deml_protocol import inputs
from deml_protocol.cid import compute_cid
from deml_protocol.commitments import holdout_commitment, submission_commitment
from deml_protocol.metrics import Metric
from deml_protocol.notices import decode_notice
from deml_protocol.outputs import NOTICE
from deml_protocol.uploads import upload_inputs
from devnet.guest_server import Result
from devnet.in_process import InProcessMachine
from tests.machine_support import Driver

Array = npt.NDArray[np.float64]

SPONSOR: Final = "0x" + "5a" * 20
SPONSOR_ALIAS: Final = "0x" + "5b" * 20  # another address the sponsor controls
HONEST: Final = ("0x" + "a1" * 20, "0x" + "a2" * 20, "0x" + "a3" * 20)  # small, median, large
MEDIAN: Final = HONEST[1]
ATTACKERS: Final = tuple("0x" + f"{0xE0 + i:02x}" * 20 for i in range(6))
HONEST_SHARES: Final = (0.10, 0.20, 0.40)  # of the client data; the attacker's own is 20%
ROUNDS: Final = 2
HOLDOUT_ROWS: Final = 40
WINDOW: Final = 100
ESCROW: Final = 10**9
BOND: Final = 10**6
EPOCHS: Final = 30
LEARNING_RATE: Final = 0.3


@dataclass(frozen=True)
class Policy:
    """The job's payout policy and aggregation rule (``dapp.policies``), and its minGain."""

    payout: str = "proportional"
    aggregation: str = "fedavg"
    trim_percent: int = 0
    min_gain: int = 1

    def __str__(self) -> str:
        trim = f" {self.trim_percent}%" if self.aggregation == "trimmed_mean" else ""
        return (
            f"payout {self.payout}, aggregation {self.aggregation}{trim}, minGain {self.min_gain}"
        )


# ---- tasks: datasets and the model each job trains ------------------------------------------
@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "logistic" | "softmax" | "linear"
    metric: Metric
    X: Array
    y: npt.NDArray[Any]
    classes: int

    def initial_model(self) -> bytes:
        d = self.X.shape[1]
        if self.kind == "logistic":
            return logistic_regression(np.zeros(d))
        if self.kind == "softmax":
            return softmax_regression(np.zeros((d, self.classes)))
        return linear_regression(np.zeros(d), float(self.y.mean()))


def load_task(name: str) -> Task:
    from sklearn import datasets  # host-side, heavy

    if name == "diabetes":
        bunch = datasets.load_diabetes()
        kind, metric, classes = "linear", Metric.RMSE, 0
    else:
        bunch = {
            "breast_cancer": datasets.load_breast_cancer,
            "wine": datasets.load_wine,
            "digits": datasets.load_digits,
        }[name]()
        classes = int(np.max(bunch.target)) + 1
        kind, metric = ("logistic" if classes == 2 else "softmax"), Metric.ACCURACY
    X = np.asarray(bunch.data, dtype=np.float64)
    std = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(std > 0, std, 1.0)
    y = np.asarray(bunch.target)
    y = y.astype(np.float64) / 100.0 if kind == "linear" else y.astype(np.int64)
    return Task(name, kind, metric, X, y, classes)


# ---- local training: what an agent does with data --------------------------------------------
def train(task: Task, model: bytes, X: Array, y: npt.NDArray[Any], epochs: int = EPOCHS) -> bytes:
    """Full-batch gradient descent on the model's own loss, from the model's weights."""
    weights = get_weights(model)
    W = weights["W0"].astype(np.float64)
    b = weights["B0"].astype(np.float64)
    if task.kind == "logistic":
        target = y.reshape(-1, 1).astype(np.float64)
    elif task.kind == "softmax":
        target = np.eye(task.classes)[y]
    else:
        target = y.reshape(-1, 1)
    for _ in range(epochs):
        logits = X @ W + b
        if task.kind == "logistic":
            predicted = 1.0 / (1.0 + np.exp(-logits))
        elif task.kind == "softmax":
            shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
            predicted = shifted / shifted.sum(axis=1, keepdims=True)
        else:
            predicted = logits
        error = (predicted - target) / len(X)
        W -= LEARNING_RATE * (X.T @ error)
        b -= LEARNING_RATE * error.sum(axis=0)
    return with_weights(model, {"W0": W, "B0": b})


def nudge(model: bytes, ulps: int = 1) -> bytes:
    """The same model with its first weight moved by ``ulps`` float32 steps: a near-copy."""
    weights = get_weights(model)
    coef = weights["W0"].astype(np.float32)
    flat = coef.reshape(-1)
    for _ in range(ulps):
        flat[0] = np.nextafter(flat[0], np.float32(np.inf))
    return with_weights(model, {"W0": coef, "B0": weights["B0"]})


def mix(model: bytes, other: bytes, scale: float) -> bytes:
    """``model + scale * (other - model)``, weight by weight."""
    a, b = get_weights(model), get_weights(other)
    return with_weights(
        model, {k: a[k].astype(np.float64) + scale * (b[k] - a[k]) for k in ("W0", "B0")}
    )


# ---- one job ----------------------------------------------------------------------------------
@dataclass
class World:
    """One job's data and the DApp it runs on."""

    task: Task
    net: Driver
    machine: InProcessMachine
    rng: np.random.Generator
    holdouts: list[tuple[Array, npt.NDArray[Any]]]
    clients: list[tuple[Array, npt.NDArray[Any]]]  # honest small, median, large
    attacker_data: tuple[Array, npt.NDArray[Any]]
    test: tuple[Array, npt.NDArray[Any]]
    job_id: int = 0
    max_submissions: int = 16
    policy: Policy = field(default_factory=Policy)
    paid: dict[str, int] = field(default_factory=dict)
    refunded: int = 0
    final: bytes = b""  # the last global model
    balances: dict[str, int] = field(default_factory=dict)  # in-app, at the end (bonds)

    def send(self, sender: str, payload: bytes, advance_time: int = 1) -> Result:
        return self.net.send(sender, payload, advance_time=advance_time)

    def upload(self, sender: str, data: bytes) -> str:
        cid, payloads = upload_inputs(data)
        if self.net.query(f"blobs/{cid}")["status"] != "stored":
            for payload in payloads:
                self.send(sender, payload)
        return cid

    def commit(self, client: str, model: bytes, round_index: int) -> bool:
        commitment = submission_commitment(
            compute_cid(model), _salt(client), client, self.job_id, round_index
        )
        call = inputs.COMMIT_SUBMISSION.encode(self.job_id, round_index, commitment)
        return self.send(client, call).status == "accepted"

    def reveal(self, client: str, model: bytes, round_index: int) -> None:
        cid = self.upload(client, model)
        call = inputs.REVEAL_SUBMISSION.encode(self.job_id, round_index, cid, _salt(client))
        self.send(client, call)

    def global_model(self) -> bytes:
        cid = self.net.query(f"jobs/{self.job_id}")["global_model_cid"]
        return bytes(self.machine.dapp.state.blob_bytes[cid])

    def timestamp_of(self, round_index: int, window: str) -> int:
        rnd = self.net.query(f"jobs/{self.job_id}/rounds/{round_index}")
        return int(rnd[window])

    def wait_until(self, ts: int) -> None:
        if self.net.timestamp < ts:
            self.send(
                SPONSOR, inputs.WITHDRAW_ETHER.encode(0), advance_time=ts - self.net.timestamp
            )


def _salt(who: str) -> bytes:
    return bytes.fromhex(who[2:]).ljust(32, b"\x01")


def make_world(task: Task, partition: str, seed: int, machine: InProcessMachine) -> World:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(task.y))
    X, y = task.X[order], task.y[order]
    test_rows = len(y) // 5
    test = (X[:test_rows], y[:test_rows])
    start = test_rows
    holdouts = []
    for _ in range(ROUNDS):
        holdouts.append((X[start : start + HOLDOUT_ROWS], y[start : start + HOLDOUT_ROWS]))
        start += HOLDOUT_ROWS
    pool_X, pool_y = X[start:], y[start:]
    if partition == "non-iid":  # contiguous slices of the data sorted by label/target
        by_label = np.argsort(pool_y, kind="stable")
        pool_X, pool_y = pool_X[by_label], pool_y[by_label]
    n = len(pool_y)
    bounds = np.cumsum([0, *(int(share * n) for share in (*HONEST_SHARES, 0.20))])
    parts = [(pool_X[a:b], pool_y[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return World(task, Driver(machine), machine, rng, holdouts, parts[:3], parts[3], test)


def post_job(world: World, holdouts: list[bytes]) -> None:
    initial = world.task.initial_model()
    model_cid = world.upload(SPONSOR, initial)
    spec = {
        "modelCid": model_cid,
        "recipe": "{}",
        "metric": world.task.metric.value,
        "holdoutRows": max(HOLDOUT_ROWS, 100),
        "holdoutCommitments": [
            holdout_commitment(compute_cid(s), _salt(SPONSOR)) for s in holdouts
        ],
        "commitSeconds": WINDOW,
        "holdoutSeconds": WINDOW,
        "revealSeconds": WINDOW,
        "minGain": world.policy.min_gain,
        "maxSubmissions": world.max_submissions,
        "commitBond": BOND,
        "payout": world.policy.payout,
        "aggregation": world.policy.aggregation,
        "trimPercent": world.policy.trim_percent,
    }
    result = world.net.deposit_ether(SPONSOR, ESCROW, inputs.CREATE_JOB.encode(**spec))
    assert result.status == "accepted" and not result.reports, result.reports
    world.job_id = max(job["id"] for job in world.net.query("jobs"))


def record_close(world: World, result: Result) -> None:
    for output in result.outputs:
        if output.raw[:4] != NOTICE.selector:
            continue
        name, fields = decode_notice(decode(["bytes"], output.raw[4:])[0])
        if name == "RoundClosed":
            for who, amount in zip(fields["paid"], fields["amounts"], strict=True):
                world.paid[who] = world.paid.get(who, 0) + amount
            world.refunded += fields["refund"]


# ---- strategies -------------------------------------------------------------------------------
@dataclass
class RoundPlan:
    """What happens in one round besides the honest clients' work."""

    commits: list[tuple[str, bytes]] = field(default_factory=list)  # before honest commits
    late_commits: list[tuple[str, bytes]] = field(default_factory=list)  # after them
    holdout: bytes | None = None  # None: the sponsor's committed shard
    reveal_holdout: bool = True
    early_upload: bool = False  # honest clients upload during the commit window


Strategy = Callable[[World, int, bytes, dict[str, bytes]], RoundPlan]
STRATEGIES: dict[str, tuple[Strategy, list[str]]] = {}  # name -> (plan, its addresses)


def strategy(name: str, addresses: list[str]) -> Callable[[Strategy], Strategy]:
    def register(plan: Strategy) -> Strategy:
        STRATEGIES[name] = (plan, addresses)
        return plan

    return register


@strategy("honest (median, reference)", [])
def _honest(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    return RoundPlan()


@strategy("newcomer (honest, own 20% data)", [ATTACKERS[0]])
def _newcomer(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    """The attacker's data, trained honestly from one address: what sybils should match."""
    X, y = world.attacker_data
    return RoundPlan(late_commits=[(ATTACKERS[0], train(world.task, base, X, y))])


@strategy("copier (the global model)", [ATTACKERS[0]])
def _copier(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    return RoundPlan(late_commits=[(ATTACKERS[0], base)])


@strategy("near-copier (global, 1 ULP)", [ATTACKERS[0]])
def _near_copier(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    return RoundPlan(late_commits=[(ATTACKERS[0], nudge(base))])


@strategy("free-rider (global + noise)", [ATTACKERS[0]])
def _free_rider(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    weights = get_weights(base)
    noisy = {k: v + world.rng.normal(0, 1e-3, v.shape) for k, v in weights.items()}
    return RoundPlan(late_commits=[(ATTACKERS[0], with_weights(base, noisy))])


@strategy("lazy (one step)", [ATTACKERS[0]])
def _lazy(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    X, y = world.attacker_data
    return RoundPlan(late_commits=[(ATTACKERS[0], train(world.task, base, X, y, epochs=1))])


@strategy("3 sybils (1-ULP copies of own work)", list(ATTACKERS[:3]))
def _sybils(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    X, y = world.attacker_data
    own = train(world.task, base, X, y)
    return RoundPlan(late_commits=[(a, nudge(own, i)) for i, a in enumerate(ATTACKERS[:3])])


@strategy("copier of a peer (1 ULP of median's)", [ATTACKERS[0]])
def _peer_copier(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    return RoundPlan(late_commits=[(ATTACKERS[0], nudge(honest[MEDIAN]))], early_upload=True)


@strategy("front-runner (commits a seen upload)", [ATTACKERS[0]])
def _front_runner(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    return RoundPlan(late_commits=[(ATTACKERS[0], honest[MEDIAN])], early_upload=True)


@strategy("poisoner (flipped labels)", [ATTACKERS[0]])
def _poisoner(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    X, y = world.attacker_data
    if world.task.kind == "linear":
        flipped: npt.NDArray[Any] = -y
    elif world.task.kind == "logistic":
        flipped = 1 - y
    else:
        flipped = (y + 1) % world.task.classes
    return RoundPlan(late_commits=[(ATTACKERS[0], train(world.task, base, X, flipped))])


@strategy("scaled update (x5)", [ATTACKERS[0]])
def _scaled(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    X, y = world.attacker_data
    return RoundPlan(late_commits=[(ATTACKERS[0], mix(base, train(world.task, base, X, y), 5.0))])


@strategy("round filler (copies, first)", list(ATTACKERS[:4]))
def _filler(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    return RoundPlan(commits=[(a, base) for a in ATTACKERS[:4]])


@strategy("sponsor: self-dealing (fits the shard)", [SPONSOR_ALIAS])
def _self_dealing(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    X, y = world.holdouts[r]
    fitted = train(world.task, base, X, y, epochs=200)
    return RoundPlan(late_commits=[(SPONSOR_ALIAS, fitted)])


@strategy("sponsor: withholds the shard", [])
def _withhold(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    return RoundPlan(reveal_holdout=False)


def perfect_baseline_shard(world: World, r: int) -> bytes:
    """Rows on which the initial model is already right (for rmse: the mean target)."""
    X, y = world.holdouts[r]
    if world.task.kind == "linear":
        return shard_bytes(X, np.full(len(y), float(world.task.y.mean())))
    if world.task.kind == "logistic":
        keep = y == 1  # p = 0.5 everywhere, read as class 1
    else:
        keep = y == 0  # equal logits: argmax is class 0
    keep_X, keep_y = X[keep], y[keep]
    if len(keep_y) == 0:
        keep_X, keep_y = (
            X[:1],
            np.zeros(1, dtype=np.int64) + (1 if world.task.kind == "logistic" else 0),
        )
    return shard_bytes(keep_X, keep_y)


@strategy("sponsor: perfect-baseline shards", [])
def _perfect(world: World, r: int, base: bytes, honest: dict[str, bytes]) -> RoundPlan:
    return RoundPlan()  # the shards themselves differ: see run_job


# ---- playing a job ----------------------------------------------------------------------------
def play_job(
    task: Task, partition: str, seed: int, name: str, policy: Policy | None = None
) -> World:
    """One whole job with strategy ``name``; the world records who was paid what."""
    plan_of, _ = STRATEGIES[name]
    with InProcessMachine() as machine:
        world = make_world(task, partition, seed, machine)
        world.policy = policy or Policy()
        if name.startswith("round filler"):
            world.max_submissions = 5
        for who in (*HONEST, *ATTACKERS, SPONSOR_ALIAS):
            world.net.deposit_ether(who, 10 * BOND)
        if name == "sponsor: perfect-baseline shards":
            shards = [perfect_baseline_shard(world, r) for r in range(ROUNDS)]
        else:
            shards = [shard_bytes(X, y) for X, y in world.holdouts]
        post_job(world, shards)
        for r in range(ROUNDS):
            play_round(world, r, shards[r], plan_of)
        world.final = world.global_model()
        for who in (*HONEST, *ATTACKERS, SPONSOR_ALIAS):
            world.balances[who] = int(world.net.query(f"balances/{who}")["ether"])
    return world


def run_job(
    task: Task, partition: str, seed: int, name: str, policy: Policy | None = None
) -> dict[str, float]:
    world = play_job(task, partition, seed, name, policy)
    X, y = world.test
    test_shard = load_shard(shard_bytes(X, y), task.metric)
    score = evaluate(world.final, test_shard, task.metric).score / 1e6
    own = sum(world.paid.get(a, 0) for a in STRATEGIES[name][1])
    return {
        "payout": float(own),
        "median": float(world.paid.get(MEDIAN, 0)),
        "honest": float(sum(world.paid.get(who, 0) for who in HONEST)),
        "sponsor": (world.refunded + world.paid.get(SPONSOR_ALIAS, 0)) / ESCROW,
        "score": score,
    }


def play_round(world: World, r: int, shard: bytes, plan_of: Strategy) -> None:
    base = world.global_model()
    honest = {
        who: train(world.task, base, X, y)
        for who, (X, y) in zip(HONEST, world.clients, strict=True)
    }
    plan = plan_of(world, r, base, honest)
    for who, model in plan.commits:
        world.commit(who, model, r)
    for who, model in honest.items():
        world.commit(who, model, r)
        if plan.early_upload:
            world.upload(who, model)  # seen by anyone watching the inputs
    for who, model in plan.late_commits:
        world.commit(who, model, r)
    world.wait_until(world.timestamp_of(r, "commit_end_ts"))
    if plan.reveal_holdout:
        cid = world.upload(SPONSOR, shard)
        call = inputs.REVEAL_HOLDOUT.encode(world.job_id, r, cid, _salt(SPONSOR))
        world.send(SPONSOR, call)
    else:
        world.wait_until(world.timestamp_of(r, "holdout_end_ts"))
    for who, model in [*plan.commits, *plan.late_commits]:  # attackers reveal first
        world.reveal(who, model, r)
    for who, model in honest.items():
        world.reveal(who, model, r)
    world.wait_until(world.timestamp_of(r, "reveal_end_ts"))
    record_close(world, world.send(SPONSOR, inputs.CLOSE_ROUND.encode(world.job_id, r)))


# ---- the table --------------------------------------------------------------------------------
def fair_pay(reference: dict[str, float]) -> float:
    """What honest median work earns in the reference job: the median-size client's pay, or,
    when its model happened to win nothing, the mean honest pay (or an equal split of the
    escrow among the honest clients if none was paid)."""
    if reference["median"] > 0:
        return reference["median"]
    if reference["honest"] > 0:
        return reference["honest"] / len(HONEST)
    return ESCROW / len(HONEST)


def simulate(
    task_names: list[str], seeds: list[int], policy: Policy | None = None
) -> list[tuple[str, dict[str, float]]]:
    tasks = [load_task(name) for name in task_names]
    rows = []
    for name in STRATEGIES:
        ratios, sponsor, deltas = [], [], []
        for task in tasks:
            for partition in ("iid", "non-iid"):
                for seed in seeds:
                    reference = run_job(task, partition, seed, "honest (median, reference)", policy)
                    outcome = (
                        reference
                        if name.startswith("honest")
                        else run_job(task, partition, seed, name, policy)
                    )
                    denominator = fair_pay(reference)
                    own = outcome["median"] if name.startswith("honest") else outcome["payout"]
                    ratios.append(own / denominator)
                    sponsor.append(outcome["sponsor"])
                    deltas.append(outcome["score"] - reference["score"])  # higher is better
        rows.append(
            (
                name,
                {
                    "payout_mean": statistics.fmean(ratios),
                    "payout_worst": max(ratios),
                    "sponsor_mean": statistics.fmean(sponsor),
                    "score_mean": statistics.fmean(deltas),
                    "score_worst": min(deltas),
                },
            )
        )
    return rows


def format_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    lines = [
        f"{'strategy':<40} {'payout mean':>11} {'worst':>7} {'sponsor':>8} "
        f"{'score mean':>11} {'worst':>8}"
    ]
    for name, row in rows:
        lines.append(
            f"{name:<40} {row['payout_mean']:>11.2f} {row['payout_worst']:>7.2f} "
            f"{row['sponsor_mean']:>8.2f} {row['score_mean']:>+11.4f} {row['score_worst']:>+8.4f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, two datasets")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--payout", default="proportional", help="the jobs' payout policy")
    parser.add_argument("--aggregation", default="fedavg", help="the jobs' aggregation rule")
    parser.add_argument("--trim-percent", type=int, default=0, help="for trimmed_mean")
    parser.add_argument("--min-gain", type=int, default=1, help="score units (ppm)")
    args = parser.parse_args()
    policy = Policy(args.payout, args.aggregation, args.trim_percent, args.min_gain)
    tasks = (
        ["breast_cancer", "wine"] if args.quick else ["breast_cancer", "wine", "digits", "diabetes"]
    )
    seeds = [1] if args.quick else list(range(1, args.seeds + 1))
    print(f"datasets: {', '.join(tasks)}; partitions: iid, non-iid; seeds: {seeds}; {policy}")
    print(format_table(simulate(tasks, seeds, policy)))


if __name__ == "__main__":
    main()
