"""The sponsor's and the data owners' ``deml`` commands against a real devnet: a whole job
played from the console, each command's main errors, and the attached commands (``job run``,
``participate``) as real subprocesses while the test moves the chain's clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from typer.testing import CliRunner, Result

from deml_console.cli import app as deml
from deml_console.datasets import breast_cancer_federation
from deml_console.model_zoo import mlp
from devnet.stack import Devnet, DevnetConfig

pytestmark = pytest.mark.devnet
WINDOW = 300


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    state = tmp_path_factory.mktemp("console-jobs")
    with Devnet(DevnetConfig(state_dir=state, port=0, epoch_length=10)) as stack:
        yield stack


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Held-out data as CSV (2 shards of 60 rows), and three private partitions as .npz."""
    where = tmp_path_factory.mktemp("console-data")
    fed = breast_cancer_federation(rounds=2, holdout_rows=60)
    X = np.concatenate([h[0] for h in fed.holdouts])
    y = np.concatenate([h[1] for h in fed.holdouts])
    header = ",".join([f"f{i}" for i in range(30)] + ["label"])
    found = {"holdout": where / "holdout.csv"}
    np.savetxt(found["holdout"], np.column_stack([X, y]), delimiter=",", header=header, comments="")
    for i, (Xp, yp) in enumerate(fed.partitions):
        found[f"part{i}"] = where / f"part{i}.npz"
        np.savez(found[f"part{i}"], X=Xp, y=yp)
    return found


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deml-home")


def run(net: Devnet, home: Path, *args: str) -> Result:
    env = {"DEML_HOME": str(home), "DEML_DEVNET": str(net.config.state_dir / "devnet.json")}
    return CliRunner().invoke(deml, list(args), env=env)


def train(
    net: Devnet, home: Path, account: str, job_id: int, data: Path, out: Path, *more: str
) -> Result:
    """``deml --account ACCOUNT train JOB --data DATA --out OUT [MORE]``."""
    args = ("--account", account, "train", str(job_id), "--data", str(data), "--out", str(out))
    return run(net, home, *args, *more)


def ok(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if result.stdout.lstrip().startswith(("{", "[")) else None


def error(result: Result, code: str) -> str:
    assert result.exit_code == 1, result.output
    assert f"error[{code}]" in result.stderr, result.stderr
    return result.stderr


def rpc(net: Devnet, method: str, *params: Any) -> Any:
    reply = requests.post(
        net.info["rpc_url"],
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        timeout=10,
    ).json()
    return reply["result"]


def warp_to(net: Devnet, target_ts: int) -> None:
    """Mine a block at ``target_ts`` or later (anvil's clock only moves forward)."""
    latest = int(rpc(net, "eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    rpc(net, "evm_increaseTime", max(1, target_ts - max(latest, int(time.time()))))
    rpc(net, "evm_mine")


def create(net: Devnet, home: Path, files: dict[str, Path], *extra: str) -> int:
    windows = [f"--{w}-seconds={WINDOW}" for w in ("commit", "holdout", "reveal")]
    posted = ok(
        run(
            net,
            home,
            "--account",
            "1",
            "job",
            "create",
            "--model",
            "logistic:30",
            "--data",
            str(files["holdout"]),
            "--holdout-rows",
            "60",
            *windows,
            *extra,
            "--json",
        )
    )
    return int(posted["job"])


def job(net: Devnet, home: Path, job_id: int) -> Any:
    return ok(run(net, home, "job", "show", str(job_id), "--json"))


def current(net: Devnet, home: Path, job_id: int) -> Any:
    shown = job(net, home, job_id)
    return shown["opened_rounds"][-1]


def test_a_whole_job_from_the_console(
    net: Devnet, home: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    job_id = create(net, home, files, "--ether", "1.5")
    listed = ok(run(net, home, "jobs", "--json"))
    assert [j["id"] for j in listed if j["id"] == job_id] and listed[-1]["window"].startswith(
        "commit"
    )
    models = {}
    for account, part in (("2", "part0"), ("3", "part1")):
        out = tmp_path / f"model{account}.onnx"
        trained = ok(train(net, home, account, job_id, files[part], out, "--json"))
        models[account] = trained["cid"]
        sent = ok(
            run(
                net,
                home,
                "--account",
                account,
                "submit",
                str(job_id),
                "--model",
                str(out),
                "--json",
            )
        )
        assert sent["state"] == "committed"
        # Never uploaded while the commit window is open: a watcher could commit the same CID.
        assert _blob_status(net, home, trained["cid"]) == "absent"
    rnd = current(net, home, job_id)
    too_soon = error(
        run(net, home, "--account", "1", "job", "reveal", str(job_id)), "window_not_open"
    )
    assert "opens in" in too_soon
    error(run(net, home, "--account", "1", "job", "close", str(job_id)), "window_not_open")

    warp_to(net, rnd["commit_end_ts"])
    revealed = ok(run(net, home, "--account", "1", "job", "reveal", str(job_id), "--json"))
    assert revealed["round"] == 0 and revealed["holdout_cid"]
    for account in ("2", "3"):
        assert (
            ok(run(net, home, "--account", account, "submit", str(job_id), "--json"))["state"]
            == "revealed"
        )
    warp_to(net, rnd["reveal_end_ts"])
    closed = ok(run(net, home, "--account", "2", "job", "close", str(job_id), "--json"))
    assert closed["round"] == "0" and closed["accepted"] == [True, True]

    status = ok(run(net, home, "job", "status", str(job_id), "--json"))
    first = status["job"]["opened_rounds"][0]
    assert first["closed"] and first["baseline"] is not None
    assert {s["model_cid"] for s in first["submissions"]} == set(models.values())
    assert all(s["score"] > first["baseline"] for s in first["submissions"])
    sponsor_view = run(net, home, "job", "status", str(job_id))
    assert "Leaderboard" in sponsor_view.stdout and "Payouts" in sponsor_view.stdout
    assert len(status["payouts"]) == 2 and all(int(a) > 0 for a in status["payouts"].values())
    earned = ok(run(net, home, "--account", "2", "rewards", "--json"))
    assert earned["payouts"][str(job_id)] == status["payouts"][_address(net, 2)]
    looked_up = ok(run(net, home, "rewards", "--address", _address(net, 2), "--json"))
    assert looked_up == earned  # anyone may look, without an account
    plot = tmp_path / "job.png"
    ok(run(net, home, "job", "report", str(job_id), "--plot", str(plot)))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _address(net: Devnet, index: int) -> str:
    return str(net.info["accounts"][index]).lower()


def _inspect(net: Devnet, path: str) -> Any:
    reply = requests.post(
        f"{net.info['node_url']}/inspect/{net.info['application']}", data=path, timeout=10
    ).json()
    return json.loads(bytes.fromhex(reply["reports"][0]["payload"][2:]))


def _blob_status(net: Devnet, home: Path, cid: str) -> str:
    return str(_inspect(net, f"blobs/{cid}")["status"])


def test_mistakes_are_named_errors(
    net: Devnet, home: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    too_much = run(
        net,
        home,
        "--account",
        "1",
        "job",
        "create",
        "--model",
        "logistic:30",
        "--data",
        str(files["holdout"]),
        "--holdout-rows",
        "60",
        "--ether",
        "99999999",
    )
    assert "the reward is 99999999 ETH" in error(too_much, "balance_too_low")
    wrong_width = run(
        net,
        home,
        "--account",
        "1",
        "job",
        "create",
        "--model",
        "logistic:5",
        "--data",
        str(files["holdout"]),
        "--holdout-rows",
        "60",
        "--ether",
        "1",
    )
    assert "takes 5 features" in error(wrong_width, "bad_model")
    error(
        run(
            net,
            home,
            "--account",
            "1",
            "job",
            "create",
            "--model",
            "tree:3",
            "--data",
            str(files["holdout"]),
            "--holdout-rows",
            "60",
            "--ether",
            "1",
        ),
        "bad_model",
    )
    no_reward = run(
        net,
        home,
        "--account",
        "1",
        "job",
        "create",
        "--model",
        "logistic:30",
        "--data",
        str(files["holdout"]),
        "--holdout-rows",
        "60",
    )
    error(no_reward, "bad_job_option")
    too_many = run(
        net,
        home,
        "--account",
        "1",
        "job",
        "create",
        "--model",
        "logistic:30",
        "--data",
        str(files["holdout"]),
        "--holdout-rows",
        "60",
        "--rounds",
        "3",
        "--ether",
        "1",
    )
    assert "make 2 shards" in error(too_many, "bad_job_option")
    staged = set(home.glob("jobs/*/pending-*"))
    for extra, said in [
        (("--trim-percent", "300"), "trimPercent is a uint8"),
        (("--recipe", '{"epochs": "x"}'), "--recipe: epochs must be a whole number"),
        (("--recipe", '{"feature_mean": [0], "feature_std": [1]}'), "the model takes 30"),
    ]:
        refused = run(
            net,
            home,
            "--account",
            "1",
            "job",
            "create",
            "--model",
            "logistic:30",
            "--data",
            str(files["holdout"]),
            "--holdout-rows",
            "60",
            "--ether",
            "1",
            *extra,
        )
        assert said in error(refused, "bad_job_option")
    assert set(home.glob("jobs/*/pending-*")) == staged  # refused before staging or uploading

    job_id = create(net, home, files, "--token", "devnet", "--amount", "90", "--bond", "5")
    shown = job(net, home, job_id)
    assert shown["asset"] == net.info["reward_token"] and shown["escrow"] == str(90 * 10**18)
    assert shown["commit_bond"] == "5"
    other = tmp_path / "mlp.onnx"
    other.write_bytes(mlp([30, 4, 2]))
    mismatch = run(net, home, "--account", "2", "submit", str(job_id), "--model", str(other))
    assert "differs from the job's" in error(mismatch, "graph_mismatch")
    error(run(net, home, "submit", str(job_id), "--model", str(other)), "no_account")
    error(run(net, home, "--account", "2", "submit", str(job_id)), "no_local_secrets")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\nx,1\n")
    error(train(net, home, "2", job_id, bad, tmp_path / "x.onnx"), "bad_data")
    error(run(net, home, "job", "show", "999"), "no_such_job")
    model = tmp_path / "early.onnx"
    ok(train(net, home, "4", job_id, files["part2"], model))
    bonded = run(net, home, "--account", "4", "submit", str(job_id), "--model", str(model))
    assert "takes a bond of 5" in error(bonded, "balance_too_low")


def test_upload_early_uploads_at_once_with_a_warning(
    net: Devnet, home: Path, files: dict[str, Path], tmp_path: Path
) -> None:
    job_id = create(net, home, files, "--ether", "1")
    model = tmp_path / "early.onnx"
    ok(train(net, home, "4", job_id, files["part2"], model))
    early = run(
        net,
        home,
        "--account",
        "4",
        "submit",
        str(job_id),
        "--model",
        str(model),
        "--upload-early",
        "--json",
    )
    assert "anyone watching can commit the same model" in early.stderr
    assert ok(early)["state"] == "uploaded"
    assert _blob_status(net, home, ok(early)["model_cid"]) == "stored"


def test_job_run_and_participate_stay_attached_until_the_job_ends(
    net: Devnet, home: Path, files: dict[str, Path]
) -> None:
    job_id = create(net, home, files, "--ether", "2")
    deml_bin = str(Path(sys.executable).parent / "deml")
    env = os.environ | {
        "DEML_HOME": str(home),
        "DEML_DEVNET": str(net.config.state_dir / "devnet.json"),
    }
    commands = [["--account", "1", "job", "run", str(job_id)]] + [
        ["--account", account, "participate", str(job_id), "--data", str(files[part]), "--json"]
        for account, part in (("2", "part0"), ("3", "part1"))
    ]
    procs = [
        subprocess.Popen(
            [deml_bin, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in commands
    ]
    try:
        deadline = time.monotonic() + 120
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            _drive(net, home, job_id)
            time.sleep(0.3)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outputs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    finished = job(net, home, job_id)
    assert finished["status"] == "finished"
    assert all(r["closed"] and len(r["submissions"]) == 2 for r in finished["opened_rounds"])
    done = run(net, home, "--account", "1", "job", "close", str(job_id))
    assert "is finished" in error(done, "window_not_open")
    for out, _ in outputs[1:]:
        assert [s["state"] for s in json.loads(out)] == ["revealed", "revealed"]


def _drive(net: Devnet, home: Path, job_id: int) -> None:
    """Move the chain's clock once everyone has done what the open window is for."""
    shown = _inspect(net, f"jobs/{job_id}")
    if shown["status"] == "finished":
        return
    rnd = shown["opened_rounds"][-1]
    subs = rnd["submissions"]
    now = int(rpc(net, "eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    if now < rnd["commit_end_ts"] and len(subs) == 2:
        warp_to(net, rnd["commit_end_ts"])
    elif rnd["holdout_cid"] and all(s["model_cid"] for s in subs) and now < rnd["reveal_end_ts"]:
        warp_to(net, rnd["reveal_end_ts"])
