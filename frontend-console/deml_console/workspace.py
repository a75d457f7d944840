"""Each job's local secrets, under ``$DEML_HOME/jobs/<app>/<job>/``, files written 0600.

A sponsor keeps every round's held-out shard and its salt (``sponsor/``) from ``deml job
create`` until the round's reveal: nobody else has them, and without them the round cannot be
scored. A data owner keeps, per account and round, the model it committed, its salt and its
commitment, and how far it got (``<account>/round-<R>/``): the model is uploaded only after the
commit window has closed and revealed after that, possibly by another ``deml`` run.

A devnet started afresh reuses the same application address and job ids, so a directory may
belong to an older chain: callers compare what is here with what the chain says
(:meth:`SponsorSecrets.check` against the job's holdout commitments).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

from deml_protocol.commitments import holdout_commitment

from .settings import deml_home

__all__ = [
    "HoldoutShard",
    "MissingSecrets",
    "SponsorSecrets",
    "Submission",
    "job_dir",
    "load_submission",
    "save_submission",
    "write_private",
]


class MissingSecrets(ValueError):
    """The local files a step needs (shards, salts, a committed model) are not here."""

    code: ClassVar[str] = "no_local_secrets"


def job_dir(app: str, job_id: int) -> Path:
    return deml_home() / "jobs" / app.lower() / str(job_id)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only (0600, directories 0700), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


def _write_json(path: Path, value: Any) -> None:
    write_private(path, json.dumps(value, indent=2, sort_keys=True).encode())


# ---- sponsor -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HoldoutShard:
    round: int
    cid: str
    salt: bytes
    data: bytes

    @property
    def commitment(self) -> bytes:
        return holdout_commitment(self.cid, self.salt)


@dataclass(frozen=True, slots=True)
class SponsorSecrets:
    """The shards of one job: staged before the job exists, then moved under its id."""

    root: Path

    @classmethod
    def stage(cls, app: str, shards: list[HoldoutShard]) -> SponsorSecrets:
        """Write the shards before the job is posted (its id is not known yet)."""
        staging = deml_home() / "jobs" / app.lower() / f"pending-{time.time_ns()}"
        secrets = cls(staging)
        for shard in shards:
            write_private(secrets._shard_path(shard.round), shard.data)
        index = [{"round": s.round, "cid": s.cid, "salt": s.salt.hex()} for s in shards]
        _write_json(staging / "sponsor" / "holdouts.json", index)
        return secrets

    def adopt(self, app: str, job_id: int) -> SponsorSecrets:
        """Move staged shards to the job's directory (an older one there is set aside)."""
        target = job_dir(app, job_id) / "sponsor"
        if target.exists():
            target.rename(target.with_name(f"sponsor.old-{time.time_ns()}"))
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.move(str(self.root / "sponsor"), target)
        self.root.rmdir()
        return SponsorSecrets(target.parent)

    @classmethod
    def of_job(cls, app: str, job_id: int, commitments: list[str] | None = None) -> SponsorSecrets:
        """The job's shards. With ``commitments`` (the job's), a job without them adopts the
        staged shards that match: a ``job create`` whose reply was lost (a timeout, a node
        that went away) left them in ``pending-*`` although the job was posted."""
        secrets = cls(job_dir(app, job_id))
        if commitments is None or (secrets.root / "sponsor" / "holdouts.json").exists():
            return secrets
        wanted = [c.lower().removeprefix("0x") for c in commitments]
        for staged in sorted((deml_home() / "jobs" / app.lower()).glob("pending-*")):
            index = staged / "sponsor" / "holdouts.json"
            if not index.exists():
                continue
            entries = sorted(json.loads(index.read_text()), key=lambda entry: entry["round"])
            made = [holdout_commitment(e["cid"], bytes.fromhex(e["salt"])).hex() for e in entries]
            if made == wanted:
                return cls(staged).adopt(app, job_id)
        return secrets

    def _shard_path(self, round_index: int) -> Path:
        return self.root / "sponsor" / f"holdout-{round_index}.npz"

    def shard(self, round_index: int) -> HoldoutShard:
        index_path = self.root / "sponsor" / "holdouts.json"
        if not index_path.exists():
            raise MissingSecrets(
                f"no held-out shards in {index_path.parent}: only the account and machine that "
                "ran `deml job create` for this job can reveal them (or DEML_HOME differs)"
            )
        for entry in json.loads(index_path.read_text()):
            if entry["round"] == round_index:
                data = self._shard_path(round_index).read_bytes()
                return HoldoutShard(round_index, entry["cid"], bytes.fromhex(entry["salt"]), data)
        raise MissingSecrets(f"no held-out shard for round {round_index} in {index_path.parent}")

    def check(self, round_index: int, commitments: list[str]) -> HoldoutShard:
        """The round's shard, if it is the one the job committed to."""
        shard = self.shard(round_index)
        expected = commitments[round_index] if round_index < len(commitments) else ""
        if shard.commitment.hex() != expected.lower().removeprefix("0x"):
            raise MissingSecrets(
                f"the shard in {self.root / 'sponsor'} is not the one this job committed to for "
                f"round {round_index} (a directory left by an older devnet?)"
            )
        return shard


# ---- data owner ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Submission:
    """What a data owner committed for a round, and how far it got."""

    job: int
    round: int
    account: str
    model_cid: str
    salt: str  # hex
    commitment: str  # hex
    is_uploaded: bool = False
    is_revealed: bool = False


def _round_dir(app: str, job_id: int, account: str, round_index: int) -> Path:
    return job_dir(app, job_id) / account.lower() / f"round-{round_index}"


def save_submission(app: str, submission: Submission, model: bytes | None = None) -> Path:
    where = _round_dir(app, submission.job, submission.account, submission.round)
    if model is not None:
        write_private(where / "model.onnx", model)
    _write_json(where / "submission.json", asdict(submission))
    return where


def load_submission(
    app: str, job_id: int, account: str, round_index: int
) -> tuple[Submission, bytes] | None:
    """The round's commitment and model kept here, or None if this account committed none."""
    where = _round_dir(app, job_id, account, round_index)
    if not (where / "submission.json").exists():
        return None
    record = Submission(**json.loads((where / "submission.json").read_text()))
    return record, (where / "model.onnx").read_bytes()
