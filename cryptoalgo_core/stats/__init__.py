"""Statistics for the verdict figures: uncertainty of means, per-trade edge and per-fold results (:mod:`.uncertainty`)."""

from cryptoalgo_core.stats.uncertainty import (
    EDGE_COLUMNS,
    FoldAuc,
    FoldSummary,
    MeanCI,
    block_bootstrap_mean,
    default_lags,
    edge_uncertainty,
    fold_auc,
    mean_ci,
    newey_west_se,
    per_fold_summary,
)

__all__ = [
    "EDGE_COLUMNS",
    "FoldAuc",
    "FoldSummary",
    "MeanCI",
    "block_bootstrap_mean",
    "default_lags",
    "edge_uncertainty",
    "fold_auc",
    "mean_ci",
    "newey_west_se",
    "per_fold_summary",
]
