"""The metrics a job can be scored by, by their wire names (``createJob``'s ``metric``).

How each becomes an integer score is the DApp's business (``dapp.metrics``,
``docs/evaluation.md``); clients need only the names and which ones are classification.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Metric"]


class Metric(StrEnum):
    ACCURACY = "accuracy"
    LOG_LOSS = "log_loss"
    ROC_AUC = "roc_auc"
    RMSE = "rmse"
    MAE = "mae"
    R2 = "r2"

    @property
    def is_classification(self) -> bool:
        return self in (Metric.ACCURACY, Metric.LOG_LOSS, Metric.ROC_AUC)
