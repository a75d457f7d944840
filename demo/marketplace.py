"""The marketplace actors (sponsor, clients) and their actions, over any transport: the
guest API server in tests, the real devnet in tests and in `make demo`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from deml_console.datasets import Federation, breast_cancer_federation, shard_bytes
from deml_console.model_zoo import logistic_regression
from deml_console.training import Recipe, train_logistic_regression
from deml_protocol import inputs
from deml_protocol.cid import compute_cid
from deml_protocol.commitments import holdout_commitment, submission_commitment
from deml_protocol.uploads import upload_inputs

WINDOW = 600  # seconds, each of commit / holdout / reveal


class Transport(Protocol):
    def send(self, sender: str, payload: bytes, *, advance_time: int = 12) -> Any: ...
    def deposit_ether(self, depositor: str, amount: int, call: bytes = b"") -> Any: ...
    def deposit_erc20(self, token: str, depositor: str, amount: int, call: bytes = b"") -> Any: ...
    def query(self, path: str) -> Any: ...


def salt_for(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


def upload(net: Transport, sender: str, data: bytes) -> str:
    cid, payloads = upload_inputs(data)
    for payload in payloads:
        net.send(sender, payload, advance_time=1)
    return cid


@dataclass
class Market:
    """Sponsor, clients and their private data for one job."""

    net: Transport
    sponsor: str
    clients: list[str]
    federation: Federation = field(default_factory=breast_cancer_federation)
    initial_model: bytes = field(default_factory=lambda: logistic_regression(np.zeros(30)))
    job_id: int = 0

    def holdout(self, round_index: int) -> tuple[bytes, str]:
        X, y = self.federation.holdouts[round_index]
        data = shard_bytes(X, y)
        return data, compute_cid(data)

    def job_spec(self, **overrides: Any) -> dict[str, Any]:
        commitments = [
            holdout_commitment(self.holdout(r)[1], salt_for(f"holdout{r}"))
            for r in range(len(self.federation.holdouts))
        ]
        spec = {
            "modelCid": compute_cid(self.initial_model),
            "recipe": '{"trainer":"logreg"}',
            "metric": "accuracy",
            "holdoutRows": 100,
            "holdoutCommitments": commitments,
            "commitSeconds": WINDOW,
            "holdoutSeconds": WINDOW,
            "revealSeconds": WINDOW,
            "minGain": 1,
            "maxSubmissions": 8,
            "commitBond": 0,
        }
        return spec | overrides

    def post(self, reward: int, *, token: str | None = None, **overrides: Any) -> Any:
        upload(self.net, self.sponsor, self.initial_model)
        call = inputs.CREATE_JOB.encode(**self.job_spec(**overrides))
        if token is None:
            result = self.net.deposit_ether(self.sponsor, reward, call)
        else:
            result = self.net.deposit_erc20(token, self.sponsor, reward, call)
        self.job_id = max(job["id"] for job in self.net.query("jobs"))
        return result

    def commit(self, client: str, model: bytes, round_index: int) -> Any:
        cid = compute_cid(model)
        commitment = submission_commitment(cid, salt_for(client), client, self.job_id, round_index)
        return self.net.send(
            client, inputs.COMMIT_SUBMISSION.encode(self.job_id, round_index, commitment)
        )

    def reveal_holdout(self, round_index: int) -> Any:
        data, cid = self.holdout(round_index)
        upload(self.net, self.sponsor, data)
        return self.net.send(
            self.sponsor,
            inputs.REVEAL_HOLDOUT.encode(
                self.job_id, round_index, cid, salt_for(f"holdout{round_index}")
            ),
        )

    def reveal(self, client: str, model: bytes, round_index: int) -> Any:
        cid = upload(self.net, client, model)
        return self.net.send(
            client, inputs.REVEAL_SUBMISSION.encode(self.job_id, round_index, cid, salt_for(client))
        )

    def train(self, client_index: int, base: bytes) -> bytes:
        X, y = self.federation.partitions[client_index]
        return train_logistic_regression(base, X, y, Recipe(epochs=15, learning_rate=0.3))


def notices_in(result: Any) -> list[tuple[str, dict[str, Any]]]:
    """The DeML notices among a result's outputs, decoded: ``[(name, fields)]``."""
    from eth_abi.abi import decode

    from deml_protocol.notices import decode_notice
    from deml_protocol.outputs import NOTICE

    found = []
    for output in result.outputs:
        if output.raw[:4] == NOTICE.selector:
            found.append(decode_notice(decode(["bytes"], output.raw[4:])[0]))
    return found
