"""Property-based fuzzing of the whole DApp state machine through the real input path.

A hypothesis ``RuleBasedStateMachine`` drives one ``InProcessMachine`` (``dapp.service.serve``
behind the guest API, the exact output bytes) with deposits (ether and ERC-20, with and
without ``execLayerData``), withdrawals, chunked blob uploads, job posting, commits with
bonds, held-out and model reveals, ``closeRound``, ``evaluate``, the passing of block time and
mangled payloads. Rules that need a window may jump block time into it, so runs reach paid
rounds and finished jobs, not just rejections. After every input:

(a) money is conserved per asset to the unit: in-app balances + job escrows not yet paid or
    refunded + bonds held == deposits - vouchers paid out (decoded from the outputs);
(b) no job pays more than it holds: paid + refunded <= escrow + forfeited bonds, with equality
    once the job is finished, and a closeRound's vouchers are exactly what the job recorded;
(c) a rejected input changes nothing (same state digest), emits no output, one report;
    a deposit whose call is rejected changes only the depositor's balance;
(d) nothing is ever ``internal_error``;
(f) storage adds up: held bytes are the stored blobs plus the bytes uploads received, the
    promised total is the sum of every holder's promise, and each blob's pins are exactly
    what live jobs reference (so nothing a live job needs can be collected);
(e) at teardown, replaying the input log into a fresh machine gives identical statuses,
    outputs and reports (and ``test_replay_on_the_real_process`` replays into the real
    ``python -m dapp`` process once).

Depth does not rest on luck: ``play_a_paying_round`` plays a whole round that two clients
win in one step, so every seed reaches paid closes. (Hypothesis's derandomized generation
changed with unrelated imports in the same pytest session; a depth check that needed a lucky
draw failed or passed with them.)

Profiles: ``make test`` runs ``deml-test`` (fixed seed, 90 examples of 25 steps);
``make fuzz`` sets ``DEML_FUZZ_EXAMPLES`` (``deml-fuzz``, random seed printed by the
Makefile, reproduce with ``make fuzz DEML_FUZZ_SEED=<seed>``).
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from eth_abi.abi import decode
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from dapp import ledger
from dapp.records import Amount, Job
from dapp.state import State
from deml_console.datasets import shard_bytes
from deml_console.model_zoo import logistic_regression
from deml_protocol import addresses, inputs
from deml_protocol.cid import compute_cid
from deml_protocol.commitments import holdout_commitment, submission_commitment
from deml_protocol.outputs import VOUCHER, output_type
from deml_protocol.uploads import upload_inputs
from devnet.guest_server import Result
from devnet.host_machine import HostMachine
from devnet.in_process import InProcessMachine
from tests.machine_support import ALICE, BOB, TOKEN, Driver, Machine

CAROL = "0x" + "c0" * 20
TOKEN2 = "0x" + "71" * 20
ACTORS = [ALICE, BOB, CAROL]
ASSETS = [addresses.ETHER, TOKEN, TOKEN2]
WINDOW = 100  # seconds, each of commit / holdout / reveal
#: (payout, aggregation, trimPercent): every policy, and a few a job must refuse.
POLICIES = [
    ("proportional", "fedavg", 0),
    ("proportional", "fedavg", 0),
    ("equal", "median", 0),
    ("proportional", "trimmed_mean", 34),
    ("equal", "trimmed_mean", 1),
    ("proportional", "median", 0),
    ("greedy", "fedavg", 0),
    ("equal", "krum", 0),
    ("proportional", "fedavg", 10),
    ("proportional", "trimmed_mean", 50),
]
GOOD_POLICIES = POLICIES[:6]
FEATURES = 4
#: Small quotas and a short upload TTL, so quota and expiry paths are reachable.
ENV = {
    "DEML_SENDER_QUOTA_BYTES": "6000",
    "DEML_TOTAL_QUOTA_BYTES": "20000",
    "DEML_UPLOAD_TTL_S": "400",
    "DEML_MAX_UPLOADS_PER_SENDER": "2",
    "DEML_BLOB_KEEP_S": "300",
}
TRANSFER = bytes.fromhex("a9059cbb")

settings.register_profile(
    "deml-test",
    max_examples=90,
    stateful_step_count=25,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile(
    "deml-fuzz",
    max_examples=int(os.environ.get("DEML_FUZZ_EXAMPLES", "10000")),
    stateful_step_count=30,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROFILE = settings.get_profile("deml-fuzz" if os.environ.get("DEML_FUZZ_EXAMPLES") else "deml-test")


# --- fixed material: a tiny logistic-regression task ------------------------------------------


@functools.cache
def material() -> dict[str, Any]:  # "shards": list[bytes], "models": name -> bytes
    rng = np.random.default_rng(9)
    truth = np.array([1.5, -2.0, 0.5, 1.0])
    shards = []
    for _ in range(3):
        X = rng.normal(size=(16, FEATURES)).astype(np.float32)
        shards.append(shard_bytes(X, (X @ truth > 0).astype(np.int64)))
    models = {
        "initial": logistic_regression(np.zeros(FEATURES)),
        "trained": logistic_regression(truth),
        "half": logistic_regression(truth * 0.5, 0.1),
        "noisy": logistic_regression(truth + rng.normal(size=FEATURES)),
        "random": logistic_regression(rng.normal(size=FEATURES)),
        "wrong_graph": logistic_regression(np.ones(FEATURES + 1)),
        "not_onnx": b"not an onnx model",
    }
    return {"shards": shards, "models": models}


def salt_for(name: str) -> bytes:
    return name.encode().ljust(32, b"\x00")[:32]


# --- the harness ------------------------------------------------------------------------------


@dataclass
class JobInfo:
    sponsor: str
    asset: str
    shards: list[bytes]  # the held-out shard of each round


@dataclass
class Ledger:
    """What the chain side saw: deposits in, vouchers out, per asset."""

    deposits: dict[str, int] = field(default_factory=dict)
    paid_out: dict[str, int] = field(default_factory=dict)

    def add(self, table: dict[str, int], asset: str, amount: int) -> None:
        table[asset] = table.get(asset, 0) + amount


def vouchers_of(result: Result) -> list[tuple[str, str, int]]:
    """``(asset, recipient, amount)`` of every voucher, decoded from the raw output bytes."""
    found = []
    for output in result.outputs:
        if output_type(output.raw) != VOUCHER.name:
            continue
        destination, value, payload = decode(["address", "uint256", "bytes"], output.raw[4:])
        destination = destination.lower()
        if payload:
            assert payload[:4] == TRANSFER and value == 0, output.raw.hex()
            to, amount = decode(["address", "uint256"], payload[4:])
            found.append((destination, to.lower(), amount))
        else:
            found.append((addresses.ETHER, destination, value))
    return found


#: Every input's outcome over the session (what the runs reached), see ``describe``.
SEEN: Counter[str] = Counter()
SELECTORS = {m.selector: m.name for m in inputs.ALL_INPUTS}


def describe(sender: str, payload: bytes, result: Result) -> str:
    """What an input was and how it ended, for ``--hypothesis-show-statistics``."""
    if sender in (addresses.ETHER_PORTAL, addresses.ERC20_PORTAL):
        call = payload[52:] if sender == addresses.ETHER_PORTAL else payload[72:]
        name = "deposit" + (f"+{SELECTORS.get(call[:4], '?')}" if call else "")
    else:
        name = SELECTORS.get(payload[:4], "?")
    errors = [json.loads(r).get("error") for r in result.reports]
    vouchers = len(vouchers_of(result))
    return f"{name} {errors or ''}{f' {vouchers} vouchers' if vouchers else ''}"


def held(state: State) -> dict[str, int]:
    """Per asset: balances + what jobs still hold + unreturned bonds."""
    total: dict[str, int] = {}
    for (asset, _), amount in state.balances.items():
        total[asset] = total.get(asset, 0) + amount
    for job in state.jobs.values():
        total[job.asset] = total.get(job.asset, 0) + job.escrow - job.paid - job.refunded
    for (job_id, index, _), sub in state.submissions.items():
        closed = state.rounds[(job_id, index)].is_closed
        # held until the close; then returned (to balances) or forfeited (into the job)
        if not closed or sub.model_cid is None or sub.is_copy:
            asset = state.jobs[job_id].asset
            total[asset] = total.get(asset, 0) + sub.bond
    return {asset: amount for asset, amount in total.items() if amount}


def forfeited(state: State, job: Job) -> int:
    return sum(
        sub.bond
        for (job_id, index, _), sub in state.submissions.items()
        if job_id == job.id
        and (sub.model_cid is None or sub.is_copy)
        and state.rounds[(job_id, index)].is_closed
    )


def expected_pins(state: State) -> Counter[str]:
    """What live jobs reference (``dapp/storage.py``): each unfinished job's graph and global
    model, and the current round's revealed shard and models."""
    pins: Counter[str] = Counter()
    for job in state.jobs.values():
        if job.is_finished:
            continue
        pins[job.spec.model_cid] += 1
        pins[job.global_model_cid] += 1
        rnd = state.rounds[(job.id, job.current_round)]
        if rnd.holdout_cid is not None:
            pins[rnd.holdout_cid] += 1
        for client in rnd.committers:
            model = state.submissions[(job.id, rnd.index, client)].model_cid
            if model is not None:
                pins[model] += 1
    return pins


def replay(
    machine: Machine, log: list[tuple[dict[str, Any], bytes]], results: list[Result]
) -> None:
    """(e) The same inputs in a fresh machine give the same statuses, outputs and reports."""
    for index, ((meta, payload), first) in enumerate(zip(log, results, strict=True)):
        again = machine.advance(meta, payload)
        assert again.status == first.status, index
        assert [(o.index, o.raw) for o in again.outputs] == [
            (o.index, o.raw) for o in first.outputs
        ], index
        assert again.reports == first.reports, index


class DAppMachine(RuleBasedStateMachine):
    replay_on_host = False

    def __init__(self) -> None:
        super().__init__()
        self.machine = InProcessMachine(env=ENV).start()
        self.net = Driver(self.machine)
        self.money = Ledger()
        self.jobs: dict[int, JobInfo] = {}
        #: (job, round, client) -> (model bytes, salt) committed to.
        self.commits: dict[tuple[int, int, str], tuple[bytes, bytes]] = {}

    # -- sending, with the per-input invariants --

    @property
    def state(self) -> State:
        return self.machine.dapp.state

    def send(self, sender: str, payload: bytes, advance_time: int = 1) -> Result:
        snapshot = self.state.copy()  # every table, by value (records are frozen)
        result = self.net.send(sender, payload, advance_time=advance_time)
        assert result.status in ("accepted", "rejected"), result
        for report in result.reports:  # (d)
            assert json.loads(report).get("error") != "internal_error", report
        outcome = f"{result.status}: {describe(sender, payload, result)}"
        event(outcome)
        SEEN[outcome] += 1
        if result.status == "rejected":  # (c)
            assert result.outputs == [] and len(result.reports) == 1, result
            assert json.loads(result.reports[0])["error"]
            assert self.state == snapshot  # so its digest is unchanged too
            return result
        if sender in (addresses.ETHER_PORTAL, addresses.ERC20_PORTAL):
            self._deposited(sender, payload, snapshot, result)
        for asset, _, amount in vouchers_of(result):
            self.money.add(self.money.paid_out, asset, amount)
        return result

    def _deposited(self, portal: str, payload: bytes, before: State, result: Result) -> None:
        if portal == addresses.ETHER_PORTAL:
            asset, depositor, amount = addresses.ETHER, "0x" + payload[:20].hex(), payload[20:52]
        else:
            asset, depositor, amount = (
                "0x" + payload[:20].hex(),
                "0x" + payload[20:40].hex(),
                (payload[40:72]),
            )
        value = int.from_bytes(amount, "big")
        self.money.add(self.money.deposits, asset, value)
        failed = [json.loads(r) for r in result.reports if b'"deposit"' in r]
        if failed:  # the call rolled back: only the credit remains, and no outputs
            assert result.outputs == [] and len(result.reports) == 1, result
            expected = before.copy()
            ledger.credit(expected, asset, depositor, Amount(value))
            assert self.state.digest() == expected.digest(), failed

    def at(self, ts: int) -> int:
        """The ``advance_time`` that lands the next input at block time ``ts`` (or just after)."""
        return max(0, ts - self.net.timestamp)

    def upload(self, sender: str, data: bytes) -> str:
        cid = compute_cid(data)
        if cid not in self.state.blobs:
            for payload in upload_inputs(data)[1]:
                self.send(sender, payload)
        return cid

    # -- invariants --

    @invariant()
    def money_is_conserved(self) -> None:  # (a)
        expected = {
            asset: self.money.deposits.get(asset, 0) - self.money.paid_out.get(asset, 0)
            for asset in set(self.money.deposits) | set(self.money.paid_out)
        }
        assert held(self.state) == {a: v for a, v in expected.items() if v}

    @invariant()
    def no_job_overpays(self) -> None:  # (b)
        state = self.state
        for job in state.jobs.values():
            owed = job.escrow + forfeited(state, job)
            assert job.paid + job.refunded <= owed, job
            if job.is_finished:
                assert job.paid + job.refunded == owed, job

    @invariant()
    def storage_adds_up(self) -> None:  # (f)
        state = self.state
        counters = state.counters
        held_bytes = sum(b.size for b in state.blobs.values())
        held_bytes += sum(u.received for u in state.uploads.values())
        assert counters.get("blob_bytes", 0) == held_bytes
        promised = {k: v for k, v in counters.items() if k.startswith("reserved:")}
        assert all(v > 0 for v in promised.values()), promised
        assert counters.get("reserved", 0) == sum(promised.values())
        pins = expected_pins(state)
        assert all(cid in state.blobs for cid in pins), "a blob a live job needs is gone"
        assert {cid: b.pins for cid, b in state.blobs.items() if b.pins} == dict(pins)

    # -- rules --

    @initialize(
        rounds=st.integers(1, 3),
        metric=st.sampled_from(["accuracy", "log_loss"]),
        bond=st.sampled_from([0, 10]),
        max_submissions=st.sampled_from([2, 8]),
        min_gain=st.sampled_from([0, 1]),
        token=st.booleans(),
        policy=st.sampled_from(GOOD_POLICIES),
    )
    def post_a_good_job(
        self,
        rounds: int,
        metric: str,
        bond: int,
        max_submissions: int,
        min_gain: int,
        token: bool,
        policy: tuple[str, str, int],
    ) -> None:
        """Every run starts with a live job (and funded clients), so runs go deep."""
        asset = TOKEN if token else addresses.ETHER
        for client in ACTORS:
            self.send(*self._deposit_payload(asset, client, 1000, b""))
        self._post(
            ALICE,
            asset,
            "deposit",
            [0, 1, 2][:rounds],
            metric,
            10**6 + 1,
            bond,
            max_submissions,
            min_gain,
            "initial",
            "holdout",
            policy,
        )

    @rule(
        asset=st.sampled_from(ASSETS),
        depositor=st.sampled_from(ACTORS),
        amount=st.sampled_from([0, 1, 7, 1000, 10**18, 2**256 - 1]),
    )
    def deposit(self, asset: str, depositor: str, amount: int) -> None:
        self.send(*self._deposit_payload(asset, depositor, amount, b""))

    def _deposit_payload(self, asset: str, depositor: str, amount: int, call: bytes) -> Any:
        head = bytes.fromhex(depositor[2:]) + amount.to_bytes(32, "big") + call
        if asset == addresses.ETHER:
            return addresses.ETHER_PORTAL, head
        return addresses.ERC20_PORTAL, bytes.fromhex(asset[2:]) + head

    @rule(
        who=st.sampled_from(ACTORS),
        asset=st.sampled_from(ASSETS),
        how=st.sampled_from(["all", "one", "too_much", "zero"]),
    )
    def withdraw(self, who: str, asset: str, how: str) -> None:
        have = ledger.balance_of(self.state, asset, who)
        amount = {"all": have, "one": 1, "too_much": min(have + 1, 2**256 - 1), "zero": 0}[how]
        if asset == addresses.ETHER:
            self.send(who, inputs.WITHDRAW_ETHER.encode(amount))
        else:
            self.send(who, inputs.WITHDRAW_ERC20.encode(asset, amount))

    @rule(
        who=st.sampled_from(ACTORS),
        blob=st.sampled_from(["shard0", "shard1", "trained", "random", "not_onnx", "junk"]),
        how=st.sampled_from(["whole", "chunks", "partial", "abort", "wrong_bytes", "zero_size"]),
    )
    def upload_blob(self, who: str, blob: str, how: str) -> None:
        m = material()
        data = {
            "shard0": m["shards"][0],
            "shard1": m["shards"][1],
            "junk": b"\x01" * 300,
        }.get(blob) or m["models"][blob]
        cid = compute_cid(data)
        size = 0 if how == "zero_size" else len(data)
        self.send(who, inputs.BEGIN_BLOB.encode(cid, size))
        if how == "whole":
            self.send(who, inputs.PUT_CHUNK.encode(cid, 0, data))
        elif how == "chunks":
            half = len(data) // 2
            self.send(who, inputs.PUT_CHUNK.encode(cid, 0, data[:half]))
            self.send(who, inputs.PUT_CHUNK.encode(cid, half + 1, data[half:]))  # out of order
            self.send(who, inputs.PUT_CHUNK.encode(cid, half, data[half:]))
        elif how == "partial":
            self.send(who, inputs.PUT_CHUNK.encode(cid, 0, data[:10]))
        elif how == "abort":
            self.send(who, inputs.PUT_CHUNK.encode(cid, 0, data[:10]))
            self.send(who, inputs.ABORT_BLOB.encode(cid))
        elif how == "wrong_bytes":
            self.send(who, inputs.PUT_CHUNK.encode(cid, 0, bytes(len(data))))
            self.send(who, inputs.ABORT_BLOB.encode(cid))

    @rule(
        data=st.data(),
        sponsor=st.sampled_from(ACTORS),
        asset=st.sampled_from(ASSETS),
        via=st.sampled_from(["deposit", "balance"]),
        rounds=st.integers(1, 3),
        metric=st.sampled_from(["accuracy", "log_loss", "rmse"]),
        reward=st.sampled_from([0, 2, 7, 1001, 10**18 + 3]),
        bond=st.sampled_from([0, 0, 1, 5, 10**17]),
        max_submissions=st.sampled_from([1, 2, 8]),
        min_gain=st.sampled_from([0, 1, 10**9]),
        model=st.sampled_from(["initial", "initial", "wrong_graph", "not_onnx"]),
        policy=st.sampled_from(POLICIES),
    )
    def post_job(
        self,
        data: st.DataObject,
        sponsor: str,
        asset: str,
        via: str,
        rounds: int,
        metric: str,
        reward: int,
        bond: int,
        max_submissions: int,
        min_gain: int,
        model: str,
        policy: tuple[str, str, int],
    ) -> None:
        indexes = [data.draw(st.integers(0, 2)) for _ in range(rounds)]
        salt_name = data.draw(st.sampled_from(["holdout", "holdout", "other"]))
        if via == "balance" and data.draw(st.booleans()):
            self.send(*self._deposit_payload(asset, sponsor, reward, b""))
        self._post(
            sponsor,
            asset,
            via,
            indexes,
            metric,
            reward,
            bond,
            max_submissions,
            min_gain,
            model,
            salt_name,
            policy,
        )

    def _post(
        self,
        sponsor: str,
        asset: str,
        via: str,
        indexes: list[int],
        metric: str,
        reward: int,
        bond: int,
        max_submissions: int,
        min_gain: int,
        model: str,
        salt_name: str,
        policy: tuple[str, str, int],
    ) -> None:
        m = material()
        shards = [m["shards"][i] for i in indexes]
        model_cid = self.upload(sponsor, m["models"][model])
        spec = {
            "modelCid": model_cid,
            "recipe": "{}",
            "metric": metric,
            "holdoutRows": 16,
            "holdoutCommitments": [
                holdout_commitment(compute_cid(s), salt_for(f"{salt_name}{r}"))
                for r, s in enumerate(shards)
            ],
            "commitSeconds": WINDOW,
            "holdoutSeconds": WINDOW,
            "revealSeconds": WINDOW,
            "minGain": min_gain,
            "maxSubmissions": max_submissions,
            "commitBond": bond,
            "payout": policy[0],
            "aggregation": policy[1],
            "trimPercent": policy[2],
        }
        if via == "deposit":
            call = inputs.CREATE_JOB.encode(**spec)
            result = self.send(*self._deposit_payload(asset, sponsor, reward, call))
        else:
            call = inputs.CREATE_JOB_FROM_BALANCE.encode(asset, reward, **spec)
            result = self.send(sponsor, call)
        if result.status == "accepted" and result.outputs:
            job_id = self.state.counters["next_job_id"] - 1
            self.jobs[job_id] = JobInfo(sponsor, asset, shards)

    def _job(self, data: st.DataObject) -> int:
        if not data.draw(st.integers(0, 7)):
            return len(self.state.jobs) + 1  # no such job
        return data.draw(st.sampled_from(sorted(self.jobs)))

    def _round(self, data: st.DataObject, job_id: int) -> int:
        job = self.state.jobs.get(job_id)
        current = job.current_round if job else 0
        return data.draw(st.sampled_from([current, current, current, current + 1, 0]))

    @precondition(lambda self: any(not j.is_finished for j in self.state.jobs.values()))
    @rule(
        data=st.data(),
        model=st.sampled_from(["trained", "half", "noisy", "random", "initial", "global", "peer"]),
    )
    def take_a_job_forward(self, data: st.DataObject, model: str) -> None:
        """The next natural steps of a live job: commits, the shard, reveals, the close."""
        for _ in range(data.draw(st.integers(1, 8))):
            live = [j for j in self.state.jobs.values() if not j.is_finished and j.id in self.jobs]
            if not live:
                return
            job = data.draw(st.sampled_from(live))
            rnd = self.state.rounds[(job.id, job.current_round)]
            now, subs = self.net.timestamp, self.state.submissions
            pending = [
                c
                for c in rnd.committers
                if subs[(job.id, rnd.index, c)].model_cid is None
                and (job.id, rnd.index, c) in self.commits
            ]
            free = [c for c in ACTORS if c not in rnd.committers]
            if now < rnd.commit_end_ts and free and data.draw(st.integers(0, 3)):
                client = data.draw(st.sampled_from(free))
                self._commit(client, job.id, rnd.index, model, "balance")
                model = data.draw(st.sampled_from(["trained", "half", "noisy", "random", "peer"]))
            elif (
                rnd.holdout_cid is None
                and now < rnd.holdout_end_ts
                and data.draw(st.integers(0, 4))
            ):
                self._reveal_holdout(job.id, rnd.index, job.sponsor, True, True)
            elif pending and now < rnd.reveal_end_ts and data.draw(st.integers(0, 4)):
                client = data.draw(st.sampled_from(pending))
                self._reveal_model((job.id, rnd.index, client), True, True)
            else:
                self._close(ALICE, job.id, rnd.index, True)

    @precondition(lambda self: self.jobs)
    @rule(
        data=st.data(),
        client=st.sampled_from(ACTORS),
        model=st.sampled_from(["trained", "half", "noisy", "random", "initial", "global", "peer"]),
        pay=st.sampled_from(["balance", "deposit"]),
    )
    def commit(self, data: st.DataObject, client: str, model: str, pay: str) -> None:
        job_id = self._job(data)
        self._commit(client, job_id, self._round(data, job_id), model, pay)

    def _commit(self, client: str, job_id: int, round_index: int, model: str, pay: str) -> None:
        model_bytes = self._model_bytes(job_id, model)
        salt = salt_for(client)
        commitment = submission_commitment(
            compute_cid(model_bytes), salt, client, job_id, round_index
        )
        call = inputs.COMMIT_SUBMISSION.encode(job_id, round_index, commitment)
        job = self.state.jobs.get(job_id)
        if pay == "deposit" and job is not None:
            result = self.send(
                *self._deposit_payload(job.asset, client, job.spec.commit_bond, call)
            )
            ok = result.status == "accepted" and not result.reports
        else:
            ok = self.send(client, call).status == "accepted"
        if ok:
            self.commits[(job_id, round_index, client)] = (model_bytes, salt)

    def _model_bytes(self, job_id: int, which: str) -> bytes:
        state, models = self.state, material()["models"]
        job = state.jobs.get(job_id)
        if which == "global" and job is not None:  # a copy of the current global model
            return bytes(state.blob_bytes.get(job.global_model_cid, models["initial"]))
        if which == "peer":  # a copy of what someone else committed to
            peers = [b for (j, _, _), (b, _) in sorted(self.commits.items()) if j == job_id]
            return peers[0] if peers else models["trained"]
        return bytes(models.get(which, models["trained"]))

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), jump=st.booleans(), right_salt=st.sampled_from([True, True, False]))
    def reveal_holdout(self, data: st.DataObject, jump: bool, right_salt: bool) -> None:
        job_id = self._job(data)
        info, job = self.jobs.get(job_id), self.state.jobs.get(job_id)
        if info is None or job is None or job.is_finished:
            self.send(ALICE, inputs.REVEAL_HOLDOUT.encode(job_id, 0, "x", bytes(32)))
            return
        sender = info.sponsor if data.draw(st.integers(0, 5)) else BOB
        self._reveal_holdout(job_id, self._round(data, job_id), sender, jump, right_salt)

    def _reveal_holdout(
        self, job_id: int, round_index: int, sender: str, jump: bool, right_salt: bool
    ) -> None:
        info, job = self.jobs[job_id], self.state.jobs[job_id]
        shard = info.shards[min(round_index, len(info.shards) - 1)]
        cid = self.upload(sender, shard)
        salt = salt_for(f"holdout{round_index}" if right_salt else "nope")
        rnd = self.state.rounds[(job_id, job.current_round)]
        wait = self.at(rnd.commit_end_ts) if jump else 1
        self.send(sender, inputs.REVEAL_HOLDOUT.encode(job_id, round_index, cid, salt), wait)

    @precondition(lambda self: self.commits)
    @rule(data=st.data(), jump=st.booleans(), right_salt=st.sampled_from([True, True, False]))
    def reveal_model(self, data: st.DataObject, jump: bool, right_salt: bool) -> None:
        self._reveal_model(data.draw(st.sampled_from(sorted(self.commits))), jump, right_salt)

    def _reveal_model(self, key: tuple[int, int, str], jump: bool, right_salt: bool) -> None:
        job_id, round_index, client = key
        model_bytes, salt = self.commits[key]
        cid = self.upload(client, model_bytes)
        rnd = self.state.rounds.get((job_id, round_index))
        wait = 1
        if jump and rnd is not None:
            wait = self.at(rnd.commit_end_ts if rnd.holdout_cid else rnd.holdout_end_ts)
        if not right_salt:
            salt = salt_for("nope")
        self.send(client, inputs.REVEAL_SUBMISSION.encode(job_id, round_index, cid, salt), wait)

    @rule(data=st.data(), jump=st.booleans(), junk=st.booleans())
    def collect_blobs(self, data: st.DataObject, jump: bool, junk: bool) -> None:
        """Anyone frees stored blobs; pinned or fresh ones must refuse, all or nothing."""
        stored = sorted(self.state.blobs)
        if not stored:
            return
        cids = data.draw(st.lists(st.sampled_from(stored), min_size=1, max_size=3))
        if junk:
            cids = [*cids, "not a cid"]
        result = self.send(ALICE, inputs.COLLECT_BLOBS.encode(cids), 301 if jump else 1)
        if result.status == "accepted":
            assert not any(cid in self.state.blobs for cid in cids)

    @precondition(lambda self: self.state.uploads)
    @rule(data=st.data(), jump=st.booleans())
    def drop_upload(self, data: st.DataObject, jump: bool) -> None:
        uploader, cid = data.draw(st.sampled_from(sorted(self.state.uploads)))
        self.send(BOB, inputs.DROP_UPLOAD.encode(uploader, cid), 401 if jump else 1)

    @rule(
        shard=st.integers(0, 2),
        second=st.sampled_from(["half", "noisy"]),
        policy=st.sampled_from(GOOD_POLICIES),
    )
    def play_a_paying_round(self, shard: int, second: str, policy: tuple[str, str, int]) -> None:
        """A one-round job that two clients win, from posting to the close, in one step: the
        deep path is reached whatever else was drawn, and the other rules play around it."""
        job_id = self.state.counters.get("next_job_id", 1)
        self._post(
            ALICE,
            addresses.ETHER,
            "deposit",
            [shard],
            "accuracy",
            1000,
            0,
            8,
            1,
            "initial",
            "holdout",
            policy,
        )
        if job_id not in self.state.jobs:
            return  # not posted (the blob quota is full, or ALICE's balance would overflow)
        for client, model in ((BOB, "trained"), (CAROL, second)):
            self._commit(client, job_id, 0, model, "balance")
        self._reveal_holdout(job_id, 0, ALICE, jump=True, right_salt=True)
        for client in (BOB, CAROL):
            if (job_id, 0, client) in self.commits:
                self._reveal_model((job_id, 0, client), jump=False, right_salt=True)
        self._close(ALICE, job_id, 0, jump=True)

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), who=st.sampled_from(ACTORS), jump=st.booleans())
    def close_round(self, data: st.DataObject, who: str, jump: bool) -> None:
        job_id = self._job(data)
        self._close(who, job_id, self._round(data, job_id), jump)

    def _close(self, who: str, job_id: int, round_index: int, jump: bool) -> None:
        job = self.state.jobs.get(job_id)
        rnd = self.state.rounds.get((job_id, round_index))
        wait = self.at(rnd.reveal_end_ts) if jump and rnd is not None else 1
        before = (job.paid + job.refunded) if job else 0
        result = self.send(who, inputs.CLOSE_ROUND.encode(job_id, round_index), wait)
        if result.status == "accepted" and job is not None:  # (b) vouchers are what it records
            after = self.state.jobs[job_id]
            sent = vouchers_of(result)
            assert all(asset == job.asset for asset, _, _ in sent), sent
            assert sum(amount for _, _, amount in sent) == after.paid + after.refunded - before
            winners = {holder for _, holder, _ in sent if holder != job.sponsor}
            SEEN[f"closeRound: winners paid {min(len(winners), 2)}"] += 1
            if after.global_model_cid != job.global_model_cid:
                SEEN[f"closeRound: aggregated by {job.spec.aggregation}"] += 1

    @rule(
        who=st.sampled_from(ACTORS),
        model=st.sampled_from(["trained", "random", "wrong_graph", "not_onnx"]),
        shard=st.integers(0, 2),
        metric=st.sampled_from(["accuracy", "log_loss", "roc_auc", "r2", "f1"]),
    )
    def evaluate(self, who: str, model: str, shard: int, metric: str) -> None:
        m = material()
        model_cid = self.upload(who, m["models"][model])
        data_cid = self.upload(who, m["shards"][shard])
        self.send(who, inputs.EVALUATE.encode(model_cid, data_cid, metric))

    @rule(seconds=st.sampled_from([0, 1, 12, WINDOW // 2, WINDOW, 3 * WINDOW, 500]))
    def let_time_pass(self, seconds: int) -> None:
        self.send(CAROL, b"\x00\x00\x00\x00", seconds)

    @rule(
        data=st.data(),
        sender=st.sampled_from(
            ACTORS
            + [addresses.ETHER_PORTAL, addresses.ERC20_PORTAL, addresses.ERC1155_SINGLE_PORTAL]
        ),
        how=st.sampled_from(["random", "truncate", "flip", "append"]),
    )
    def garbage(self, data: st.DataObject, sender: str, how: str) -> None:
        if how == "random" or not self.net.log:
            payload = data.draw(st.binary(max_size=200))
        else:
            payload = data.draw(st.sampled_from(self.net.log[-20:]))[1]
            if how == "truncate":
                payload = payload[: data.draw(st.integers(0, max(0, len(payload) - 1)))]
            elif how == "flip" and payload:
                at = data.draw(st.integers(0, len(payload) - 1))
                payload = payload[:at] + bytes([payload[at] ^ 0xFF]) + payload[at + 1 :]
            else:
                payload += data.draw(st.binary(min_size=1, max_size=40))
        self.send(sender, payload)

    def teardown(self) -> None:
        self.machine.stop()
        net = self.net
        fresh: Any = HostMachine(env=ENV) if self.replay_on_host else InProcessMachine(env=ENV)
        with fresh as machine:
            replay(machine, net.log, net.results)
            assert Driver(machine).digest() == self.state.digest()


def test_dapp_state_machine() -> None:
    run_state_machine_as_test(DAppMachine, settings=PROFILE)
    reached = " | ".join(SEEN)
    deep_paths = ["accepted: revealHoldout", "accepted: revealSubmission", "winners paid 2"]
    deep_paths += [f"aggregated by {rule}" for rule in ("fedavg", "median", "trimmed_mean")]
    for deep in deep_paths:
        assert deep in reached, f"the runs never reached {deep!r}: the rules need a nudge"


class HostReplay(DAppMachine):
    replay_on_host = True


def test_replay_on_the_real_process() -> None:
    """(e) on the real ``python -m dapp`` process over HTTP: a couple of long runs."""
    run_state_machine_as_test(
        HostReplay,
        settings=settings(PROFILE, max_examples=2, stateful_step_count=60, phases=[Phase.generate]),
    )


def test_overflowing_deposit_is_rejected_whole() -> None:
    """A deposit that would take a balance past uint256 is rejected, not half-credited."""
    with InProcessMachine(env=ENV) as machine:
        net = Driver(machine)
        assert net.deposit_ether(ALICE, 2**256 - 1).status == "accepted"
        before = net.digest()
        assert net.deposit_ether(ALICE, 1).status == "rejected"
        assert net.digest() == before
