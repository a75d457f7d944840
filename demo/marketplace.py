"""The marketplace scenario (a sponsor, clients, their private data, one job) on the client
SDK (``deml_console.sdk``), over any transport: a simulated chain in tests, the real devnet
in tests and in `make demo`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deml_console.datasets import Federation, breast_cancer_federation, shard_bytes
from deml_console.model_zoo import logistic_regression
from deml_console.sdk import Client, Outcome, Transport
from deml_console.training import Recipe, train_logistic_regression
from deml_protocol.cid import compute_cid
from deml_protocol.commitments import holdout_commitment

WINDOW = 600  # seconds, each of commit / holdout / reveal


def salt_for(name: str) -> bytes:
    return hashlib.sha256(name.encode()).digest()


@dataclass
class Market:
    """Sponsor, clients and their private data for one job."""

    net: Transport
    sponsor: str
    clients: list[str]
    federation: Federation = field(default_factory=breast_cancer_federation)
    initial_model: bytes = field(default_factory=lambda: logistic_regression(np.zeros(30)))
    job_id: int = 0

    def client(self, account: str) -> Client:
        return Client(self.net, account)

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
            "payout": "proportional",
            "aggregation": "fedavg",
            "trimPercent": 0,
        }
        return spec | overrides

    def post(self, reward: int, *, token: str | None = None, **overrides: Any) -> int:
        sponsor = self.client(self.sponsor)
        sponsor.upload(self.initial_model)
        self.job_id = sponsor.create_job(self.job_spec(**overrides), reward, token=token)
        return self.job_id

    def commit(self, client: str, model: bytes, round_index: int) -> Outcome:
        return self.client(client).commit(
            self.job_id, round_index, compute_cid(model), salt_for(client)
        )

    def reveal_holdout(self, round_index: int) -> Outcome:
        data, cid = self.holdout(round_index)
        sponsor = self.client(self.sponsor)
        sponsor.upload(data)
        return sponsor.reveal_holdout(
            self.job_id, round_index, cid, salt_for(f"holdout{round_index}")
        )

    def reveal(self, client: str, model: bytes, round_index: int) -> Outcome:
        me = self.client(client)
        cid = me.upload(model)
        return me.reveal_model(self.job_id, round_index, cid, salt_for(client))

    def train(self, client_index: int, base: bytes) -> bytes:
        X, y = self.federation.partitions[client_index]
        return train_logistic_regression(base, X, y, Recipe(epochs=15, learning_rate=0.3))
