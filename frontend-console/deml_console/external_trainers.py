"""Trainers that are not ours: a sponsor's trainer executable (``--trainer-cmd``), and any
Flower ``NumPyClient``. Both see weights only (numpy arrays named like the graph's
initializers) and give weights back; the console writes them into the job's exact graph.

The trainer-command file contract. The console makes a fresh directory and runs the command
there (``sh -c CMD``), with these environment variables:

- ``DEML_WEIGHTS_IN``: an ``.npz`` of the global model's initializers (``W0``, ``B0``, ...);
- ``DEML_DATA``: an ``.npz`` with ``X`` (float32 ``[rows, features]``) and ``y``;
- ``DEML_RECIPE``: a file with the job's recipe (the text the sponsor posted);
- ``DEML_WEIGHTS_OUT``: where the command must write an ``.npz`` with the trained
  initializers (same names and shapes; names left out keep their values).

The command is code from someone else: it runs only when the user passes ``--trainer-cmd``,
with an environment of its own (``PATH``, the locale, ``HOME`` and ``TMPDIR`` in its
directory, the four variables above: none of the console's keys or passwords), and on
Linux without network access (``unshare -rn``, a user + network namespace) when the system
allows it. The console says which, every time. That is not a sandbox: the command runs as
the user and can read the user's files (``$DEML_HOME`` included) and reach local sockets.
Run only a trainer you would run yourself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from .model_zoo import get_weights, with_weights
from .output import Output

__all__ = ["NumPyClientLike", "TrainerFailed", "run_trainer_cmd", "train_with_numpy_client"]


class TrainerFailed(RuntimeError):
    code: ClassVar[str] = "trainer_failed"


def _isolation() -> list[str]:
    """``unshare -rn`` if it works here (no network for the command), else nothing."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10)
    return [unshare, "-rn"] if probe.returncode == 0 else []


def run_trainer_cmd(
    command: str,
    model: bytes,
    data: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    recipe: str,
    *,
    out: Output,
) -> bytes:
    """Run a trainer command on the file contract above; the job's graph, new weights."""
    prefix = _isolation()
    out.warn(
        f"running a trainer command you passed: {command!r} "
        + (
            "without network access (unshare -rn)"
            if prefix
            else "WITH network access (no user namespaces here); run only code you trust"
        )
    )
    with tempfile.TemporaryDirectory(prefix="deml-trainer-") as where:
        folder = Path(where)
        paths = {name: folder / f"{name}.npz" for name in ("weights_in", "data", "weights_out")}
        arrays: dict[str, Any] = get_weights(model)
        np.savez(paths["weights_in"], **arrays)
        np.savez(paths["data"], X=data[0], y=data[1])
        (folder / "recipe.json").write_text(recipe)
        env = {
            "DEML_WEIGHTS_IN": str(paths["weights_in"]),
            "DEML_DATA": str(paths["data"]),
            "DEML_RECIPE": str(folder / "recipe.json"),
            "DEML_WEIGHTS_OUT": str(paths["weights_out"]),
        }
        _run([*prefix, "sh", "-c", command], folder, env)
        if not paths["weights_out"].exists():
            raise TrainerFailed(f"{command!r} wrote no weights to $DEML_WEIGHTS_OUT")
        with np.load(paths["weights_out"], allow_pickle=False) as trained:
            weights = {name: trained[name] for name in trained.files}
    try:
        return with_weights(model, weights)
    except (KeyError, ValueError) as exc:
        raise TrainerFailed(f"the trainer's weights do not fit the job's graph: {exc}") from exc


#: What the trainer inherits from the console's environment: how to find programs and
#: speak the locale. Nothing else: the console's environment may hold DEML_PRIVATE_KEY,
#: DEML_PASSWORD, DEML_MNEMONIC, SSH_AUTH_SOCK or cloud credentials.
INHERITED = ("PATH", "LANG", "LC_ALL", "TZ")


def trainer_environment(cwd: Path, files: dict[str, str]) -> dict[str, str]:
    """The trainer's whole environment: :data:`INHERITED`, ``HOME`` and ``TMPDIR`` in its
    own directory, and the contract's file variables."""
    kept = {name: os.environ[name] for name in INHERITED if name in os.environ}
    return kept | {"HOME": str(cwd), "TMPDIR": str(cwd)} | files


def _run(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        list(argv),
        cwd=cwd,
        env=trainer_environment(cwd, env),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-800:]
        raise TrainerFailed(f"the trainer command exited with {done.returncode}: {tail}")


class NumPyClientLike(Protocol):
    """What Flower's ``flwr.client.NumPyClient`` offers (``flwr`` itself is not needed)."""

    def fit(
        self, parameters: list[npt.NDArray[Any]], config: dict[str, Any]
    ) -> tuple[list[npt.NDArray[Any]], int, dict[str, Any]]: ...


def train_with_numpy_client(
    model: bytes, client: NumPyClientLike, config: dict[str, Any] | None = None
) -> bytes:
    """One Flower-style ``fit`` from the job's weights (in initializer order: ``W0, B0, W1,
    ...``); the job's graph with the arrays it returns."""
    names = list(get_weights(model))
    parameters = [get_weights(model)[name] for name in names]
    trained, _, _ = client.fit(parameters, dict(config or {}))
    if len(trained) != len(names):
        raise TrainerFailed(f"fit returned {len(trained)} arrays; the graph has {names}")
    return with_weights(model, dict(zip(names, trained, strict=True)))
