"""The console's local pieces, without a chain: job secrets on disk, round phases and waiting,
the job-spec option table, data files, scikit-learn training onto the zoo's graphs, the
same-graph check and the report plot."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from deml_console import model_zoo
from deml_console.cli import app as deml
from deml_console.datasets import DataError, breast_cancer_federation, load_table
from deml_console.external_trainers import TrainerFailed, run_trainer_cmd, train_with_numpy_client
from deml_console.job_spec import (
    COMPUTED_FIELDS,
    SPEC_OPTIONS,
    BadJobOption,
    BadModelSpec,
    build_model,
    holdout_shards,
    job_fields,
    model_features,
    spec_fields,
)
from deml_console.output import Output
from deml_console.phases import Phase, describe_seconds, phase_of, phase_window, wait_until
from deml_console.plots import plot_job
from deml_console.sklearn_training import TrainingError, TrainRecipe, train_model
from deml_console.submitting import GraphMismatch, check_same_graph
from deml_console.workspace import (
    MissingSecrets,
    SponsorSecrets,
    Submission,
    load_submission,
    save_submission,
)
from deml_protocol.inputs import JOB_SPEC

ROUND: Any = {
    "job": 1, "round": 0, "start_ts": 100, "commit_end_ts": 200, "holdout_end_ts": 300,
    "reveal_end_ts": 400, "closed": False, "holdout_cid": None, "submissions": [],
}  # fmt: skip


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DEML_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def data() -> tuple[Any, Any, Any, Any]:
    fed = breast_cancer_federation(rounds=1, holdout_rows=100)
    (X, y), (Xh, yh) = fed.partitions[0], fed.holdouts[0]
    return X, y, Xh, yh


def accuracy(model: bytes, X: Any, y: Any) -> float:
    p = ort.InferenceSession(model).run(None, {"X": X})[0]
    predicted = (p[:, 0] > 0.5).astype(int) if p.shape[1] == 1 else p.argmax(axis=1)
    return float((predicted == y).mean())


# ---- workspace -------------------------------------------------------------------------------
def test_sponsor_secrets_are_private_and_checked_against_the_job(home: Path) -> None:
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    shards = holdout_shards(X, np.arange(20) % 2, rows=10, rounds=None)
    assert [s.round for s in shards] == [0, 1] and len({s.salt for s in shards}) == 2
    kept = SponsorSecrets.stage("0xAB", shards).adopt("0xAB", 7)
    assert kept.root == home / "jobs" / "0xab" / "7"
    for path in (kept.root / "sponsor").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    commitments = ["0x" + s.commitment.hex() for s in shards]
    assert SponsorSecrets.of_job("0xab", 7).check(1, commitments).data == shards[1].data
    with pytest.raises(MissingSecrets, match="not the one this job committed"):
        SponsorSecrets.of_job("0xab", 7).check(0, commitments[::-1])
    with pytest.raises(MissingSecrets, match="only the account and machine"):
        SponsorSecrets.of_job("0xab", 8).shard(0)
    with pytest.raises(BadJobOption, match="make 2 shards"):
        holdout_shards(X, np.arange(20) % 2, rows=10, rounds=3)


def test_shards_staged_by_a_create_whose_reply_was_lost_are_found_by_their_commitments(
    home: Path,
) -> None:
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    ours = holdout_shards(X, np.arange(20) % 2, rows=10, rounds=None)
    other = holdout_shards(X, np.arange(20) % 2, rows=10, rounds=None)  # other salts
    SponsorSecrets.stage("0xAB", other)
    SponsorSecrets.stage("0xAB", ours)  # posted, but `job create` never heard back
    commitments = ["0x" + s.commitment.hex() for s in ours]
    found = SponsorSecrets.of_job("0xab", 9, commitments)
    assert found.root == home / "jobs" / "0xab" / "9"
    assert found.check(0, commitments).data == ours[0].data
    assert len(list((home / "jobs" / "0xab").glob("pending-*"))) == 1  # the other job's stay
    with pytest.raises(MissingSecrets):  # no staged shards match: nothing is adopted
        SponsorSecrets.of_job("0xab", 10, ["0x" + "00" * 32] * 2).shard(0)
    assert len(list((home / "jobs" / "0xab").glob("pending-*"))) == 1


def test_a_submission_record_round_trips() -> None:
    record = Submission(3, 1, "0xAA", "bafy", "00" * 32, "11" * 32)
    where = save_submission("0xapp", record, b"model")
    assert stat.S_IMODE((where / "model.onnx").stat().st_mode) == 0o600
    assert load_submission("0xapp", 3, "0xAA", 1) == (record, b"model")
    assert load_submission("0xapp", 3, "0xAA", 2) is None


# ---- phases ----------------------------------------------------------------------------------
def test_phases_follow_the_round_windows() -> None:
    seen = [phase_of(ROUND, t) for t in (100, 199, 200, 299, 300, 399, 400)]
    assert seen == ["commit", "commit", "holdout", "holdout", "reveal", "reveal", "closable"]
    assert phase_of(ROUND | {"closed": True}, 150) is Phase.CLOSED
    assert phase_window(ROUND, Phase.HOLDOUT) == (200, 300)
    assert phase_window(ROUND, Phase.CLOSABLE) == (400, None)
    assert [describe_seconds(s) for s in (5, 65, 3725)] == ["5s", "1m 05s", "1h 02m 05s"]


def test_wait_until_sleeps_on_the_injected_clock() -> None:
    now = [0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += 10

    out = Output(json_mode=True)
    wait_until(35, clock=lambda: now[0], out=out, label="x", sleep=sleep)
    assert now[0] >= 35 and len(slept) == 4
    calls = [0]

    def ready() -> bool:
        calls[0] += 1
        return calls[0] > 1

    wait_until(10_000, clock=lambda: now[0], out=out, label="x", ready=ready, sleep=sleep)
    assert now[0] < 10_000


# ---- the job spec ----------------------------------------------------------------------------
def test_the_option_table_and_the_computed_fields_cover_the_job_spec() -> None:
    fields = [row.field for row in SPEC_OPTIONS] + list(COMPUTED_FIELDS)
    assert sorted(fields) == sorted(name for name, _ in JOB_SPEC)
    shown = CliRunner().invoke(deml, ["job", "create", "--help"], env={"COLUMNS": "200"})
    assert all(row.flag in shown.stdout for row in SPEC_OPTIONS), shown.stdout


@pytest.mark.parametrize(
    ("spec", "features"),
    [("logistic:30", 30), ("linear:4", 4), ("softmax:5:3", 5), ("mlp:30,16,2", 30)],
)
def test_model_zoo_specs(spec: str, features: int) -> None:
    assert model_features(build_model(spec)) == features


def _spec(**changes: int) -> dict[str, Any]:
    """The options of ``deml job create`` at their defaults (keyed by parameter name)."""
    options = {row.parameter: row.default for row in SPEC_OPTIONS}
    return options | changes


def test_the_job_spec_is_encoded_and_the_recipe_checked_before_anything_is_sent(
    data: tuple[Any, Any, Any, Any],
) -> None:
    """A value its ABI type cannot hold, or a recipe `deml train` cannot follow, is a named
    error of `deml job create` before the model is uploaded or the shards staged."""
    _, _, Xh, yh = data
    model, shards = build_model("logistic:30"), holdout_shards(Xh, yh, rows=50, rounds=2)
    fields = job_fields(model, shards, recipe='{"epochs": 5}', holdout_rows=50, options=_spec())
    assert fields["holdoutCommitments"] == [s.commitment for s in shards]
    assert spec_fields(_spec()).items() <= fields.items()
    for bad, said in [
        (_spec(commit_seconds=-1), "--commit-seconds -1 cannot be encoded"),
        (_spec(bond=-5), "--bond -5 cannot be encoded"),
        (_spec(trim_percent=300), "trimPercent is a uint8"),
    ]:
        with pytest.raises(BadJobOption, match=said):
            job_fields(model, shards, recipe="{}", holdout_rows=50, options=bad)
    for recipe, field in [
        ('{"epochs": "x"}', "epochs"),
        ('{"feature_mean": [1, 2], "feature_std": [1, 2]}', "feature_mean"),
    ]:
        with pytest.raises(BadJobOption, match=f"--recipe: {field}"):
            job_fields(model, shards, recipe=recipe, holdout_rows=50, options=_spec())


def test_negative_spec_options_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,label\n1,0\n")
    for flag in ("--commit-seconds", "--holdout-seconds", "--reveal-seconds", "--bond",
                 "--min-gain", "--max-submissions", "--trim-percent"):  # fmt: skip
        args = ["job", "create", "--model", "logistic:1", "--data", str(tmp_path / "h.csv")]
        shown = CliRunner().invoke(deml, [*args, "--holdout-rows", "1", flag, "-1"])
        assert shown.exit_code == 2 and "error[usage]" in shown.stderr, shown.output
        assert flag in shown.stderr, shown.stderr


@pytest.mark.parametrize("spec", ["tree:3", "logistic:x", "softmax:5", "mlp:3", "logistic:1:2"])
def test_bad_model_specs(spec: str) -> None:
    with pytest.raises(BadModelSpec):
        build_model(spec)


# ---- data files ------------------------------------------------------------------------------
def test_tables_from_csv_with_or_without_header_and_npz(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    (tmp_path / "n.csv").write_text("1,2,0.5\n3,4,1.5\n")
    np.savez(tmp_path / "d.npz", X=np.ones((2, 2)), y=np.array([0, 1]))
    X, y = load_table(tmp_path / "h.csv")
    assert X.tolist() == [[1, 2], [3, 4]] and y.dtype == np.int64
    assert load_table(tmp_path / "n.csv")[1].dtype == np.float64
    assert load_table(tmp_path / "d.npz")[0].dtype == np.float32
    (tmp_path / "bad.csv").write_text("a,b\nx,y\n")
    with pytest.raises(DataError):
        load_table(tmp_path / "bad.csv")
    np.savez(tmp_path / "e.npz", A=np.ones(2))
    with pytest.raises(DataError, match="needs arrays X and y"):
        load_table(tmp_path / "e.npz")


# ---- training --------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["logistic:30", "softmax:30:2", "mlp:30,8,2"])
def test_training_improves_the_job_model_and_keeps_its_graph(
    spec: str, data: tuple[Any, Any, Any, Any]
) -> None:
    X, y, Xh, yh = data
    base = build_model(spec)
    epochs = 60 if spec.startswith("mlp") else 20
    trained = train_model(base, X, y, TrainRecipe(epochs=epochs, learning_rate=0.01))
    check_same_graph(trained, base)
    assert accuracy(trained, Xh, yh) > max(0.85, accuracy(base, Xh, yh))


def test_a_two_class_softmax_maps_onto_one_logistic_unit(data: tuple[Any, Any, Any, Any]) -> None:
    X, y, Xh, _ = data
    logistic = train_model(build_model("logistic:30"), X, y, TrainRecipe())
    softmax = train_model(build_model("softmax:30:2"), X, y, TrainRecipe())
    p1 = ort.InferenceSession(logistic).run(None, {"X": Xh})[0][:, 0]
    p2 = ort.InferenceSession(softmax).run(None, {"X": Xh})[0][:, 1]
    assert np.allclose(p1, p2, atol=1e-4)


def test_training_errors_say_what_is_wrong(data: tuple[Any, Any, Any, Any]) -> None:
    X, y, _, _ = data
    with pytest.raises(TrainingError, match="takes 5 features"):
        train_model(build_model("logistic:5"), X, y, TrainRecipe())
    with pytest.raises(TrainingError, match="one class only"):
        train_model(build_model("logistic:30"), X, np.zeros_like(y), TrainRecipe())
    assert TrainRecipe.parse('{"epochs": 3, "other": 1}').epochs == 3
    assert TrainRecipe.parse("train well").epochs == TrainRecipe().epochs
    assert TrainRecipe.parse('{"epochs": 7.0, "l2": 0}') == TrainRecipe(epochs=7, l2=0.0)


@pytest.mark.parametrize(
    ("recipe", "field"),
    [
        ('{"epochs": "x"}', "epochs"),
        ('{"epochs": true}', "epochs"),
        ('{"epochs": 0}', "epochs"),
        ('{"epochs": 1000000000000}', "epochs"),  # would train for ever
        ('{"epochs": 2.5}', "epochs"),
        ('{"learning_rate": 0}', "learning_rate"),
        ('{"learning_rate": "fast"}', "learning_rate"),
        ('{"learning_rate": NaN}', "learning_rate"),
        ('{"l2": -1}', "l2"),
        ('{"l2": Infinity}', "l2"),
        ('{"l2": 1' + "0" * 400 + "}", "l2"),  # no float holds it
        ('{"feature_mean": "x", "feature_std": [1]}', "feature_mean"),
        ('{"feature_mean": [0], "feature_std": [0]}', "feature_std"),
        ('{"feature_mean": [0]}', "feature_mean and feature_std"),
    ],
)
def test_a_sponsors_malformed_recipe_is_a_training_error_naming_the_field(
    recipe: str, field: str
) -> None:
    with pytest.raises(TrainingError, match=f"set by its sponsor, cannot be followed: {field}"):
        TrainRecipe.parse(recipe)


def test_z_scoring_of_the_wrong_length_is_the_recipes_fault(
    data: tuple[Any, Any, Any, Any],
) -> None:
    X, y, _, _ = data
    recipe = TrainRecipe.parse('{"feature_mean": [1, 2], "feature_std": [1, 2]}')
    with pytest.raises(
        TrainingError, match="sponsor.*feature_mean has 2 values; the model takes 30"
    ):
        train_model(build_model("logistic:30"), X, y, recipe)
    with pytest.raises(TrainingError, match="feature_mean has 2 values; the model takes 3"):
        TrainRecipe.parse('{"feature_mean": [1, 2], "feature_std": [1, 2]}', features=3)
    fine = TrainRecipe.parse(f'{{"feature_mean": {[0] * 30}, "feature_std": {[1] * 30}}}')
    assert train_model(build_model("logistic:30"), X, y, fine)


def test_the_same_graph_check() -> None:
    base = build_model("logistic:30")
    check_same_graph(model_zoo.logistic_regression(np.ones(30), 2.0), base)
    with pytest.raises(GraphMismatch, match="differs"):
        check_same_graph(build_model("softmax:30:2"), base)
    with pytest.raises(GraphMismatch, match="differs"):
        check_same_graph(build_model("logistic:29"), base)
    with pytest.raises(GraphMismatch, match="not an ONNX model"):
        check_same_graph(b"\xff" * 40, base)


def test_the_report_plot(tmp_path: Path) -> None:
    sub: Any = {"client": "0x" + "ab" * 20, "score": 900}
    job: Any = {"id": 1, "metric": "accuracy", "rounds": 2}
    job["opened_rounds"] = [ROUND | {"baseline": 500, "submissions": [sub]}]
    data = {"job": job, "asset": {"symbol": "ETH", "decimals": 18}}
    plot_job(data | {"payouts": {sub["client"]: str(10**18)}}, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


# ---- trainers that are not ours ---------------------------------------------------------------
TRAINER = """
import json, os, socket, numpy as np
w = dict(np.load(os.environ["DEML_WEIGHTS_IN"]))
d = np.load(os.environ["DEML_DATA"])
recipe = json.load(open(os.environ["DEML_RECIPE"]))
try:
    socket.create_connection(("1.1.1.1", 53), timeout=1)
    online = 1.0
except OSError:
    online = 0.0
w["B0"] = np.array([recipe["bias"] + online + len(d["y"])], dtype=np.float32)
np.savez(os.environ["DEML_WEIGHTS_OUT"], **w)
"""


def test_a_trainer_command_follows_the_file_contract(tmp_path: Path) -> None:
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    base = build_model("logistic:3")
    data = (np.ones((4, 3), dtype=np.float32), np.array([0, 1, 0, 1]))
    out = Output(json_mode=True)
    trained = run_trainer_cmd(f"{sys.executable} {script}", base, data, '{"bias": 10}', out=out)
    check_same_graph(trained, base)
    assert model_zoo.get_weights(trained)["B0"][0] == 14.0  # 10 + 4 rows, and no network
    with pytest.raises(TrainerFailed, match="exited with 3"):
        run_trainer_cmd("exit 3", base, data, "{}", out=out)
    with pytest.raises(TrainerFailed, match="wrote no weights"):
        run_trainer_cmd("true", base, data, "{}", out=out)


def test_a_trainer_command_sees_none_of_the_consoles_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEML_PRIVATE_KEY", "0x" + "11" * 32)
    monkeypatch.setenv("DEML_PASSWORD", "hunter2")
    monkeypatch.setenv("SSH_AUTH_SOCK", "/tmp/agent.sock")
    seen = tmp_path / "env.txt"
    base = build_model("logistic:3")
    data = (np.ones((4, 3), dtype=np.float32), np.array([0, 1, 0, 1]))
    command = f'env > {seen}; cp "$DEML_WEIGHTS_IN" "$DEML_WEIGHTS_OUT"'
    run_trainer_cmd(command, base, data, "{}", out=Output(json_mode=True))
    names = {line.split("=", 1)[0] for line in seen.read_text().splitlines() if "=" in line}
    assert not names & {"DEML_PRIVATE_KEY", "DEML_PASSWORD", "SSH_AUTH_SOCK", "DEML_HOME"}
    assert {"DEML_WEIGHTS_IN", "DEML_WEIGHTS_OUT", "DEML_DATA", "DEML_RECIPE"} <= names


def test_a_flower_style_numpy_client_trains_the_job_weights() -> None:
    class Doubler:
        def fit(
            self, parameters: list[Any], config: dict[str, Any]
        ) -> tuple[list[Any], int, dict[str, Any]]:
            return [p * 2 + config["shift"] for p in parameters], 10, {}

    base = model_zoo.logistic_regression(np.ones(3), 1.0)
    trained = train_with_numpy_client(base, Doubler(), {"shift": 1})
    assert model_zoo.get_weights(trained)["W0"].tolist() == [[3.0], [3.0], [3.0]]
    assert model_zoo.get_weights(trained)["B0"].tolist() == [3.0]


def test_a_model_is_uploaded_only_once_a_mined_block_is_past_the_commit_window() -> None:
    """The wall clock past the commit window is not enough: a commitment sent now could
    still land in a block stamped before its end. Only a mined block past it seals the
    round (``phases.is_sealed``)."""
    from deml_console.sdk import Client, MachineTransport
    from deml_console.submitting import Step, submit_step
    from deml_protocol import queries
    from demo.marketplace import Market
    from devnet.in_process import InProcessMachine

    with InProcessMachine() as machine:
        net = MachineTransport(machine)
        market = Market(net, sponsor="0x" + "a1" * 20, clients=["0x" + "b0" * 20])
        job_id = market.post(10**18)
        me = Client(net, market.clients[0])
        commit_end = me.round(job_id, 0)["commit_end_ts"]
        model = market.train(0, market.initial_model)
        wall, mined = [commit_end - 60], [commit_end - 60]  # the clocks, as the test says
        step = Step(me, net.app, lambda: wall[0], lambda: mined[0], Output(json_mode=True))
        cid = submit_step(step, job_id, model).model_cid  # committed; kept locally
        wall[0], mined[0] = commit_end + 60, commit_end - 1  # no block past the end yet
        assert not submit_step(step, job_id, None).is_uploaded
        assert me.ask(queries.BLOB, cid=cid)["status"] == "absent"  # wall clock alone: no
        mined[0] = commit_end  # a block at the window's end: no commitment can enter now
        assert submit_step(step, job_id, None).is_uploaded
        assert me.ask(queries.BLOB, cid=cid)["status"] == "stored"


def test_verify_fails_a_closed_round_whose_notice_the_node_does_not_serve() -> None:
    from deml_console.verify import RoundCheck

    hidden = RoundCheck(0, "bafy", None, "missing notice", None, "no notice")
    pending = RoundCheck(0, "bafy", "bafy", "ok", 3, "not claimed yet")
    assert hidden.is_failure and not pending.is_failure
