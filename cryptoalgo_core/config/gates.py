"""config/gates.yaml: the thresholds of the market-data checks and of the data-QA gate (one place each)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptoalgo_core.config.io import build_dataclass, config_dir, read_yaml

__all__ = ["DataQaGates", "Gates", "MarketDataGates", "PortfolioGates", "load_gates"]


@dataclass(frozen=True)
class MarketDataGates:
    gap_warn_hours: int = 1
    gap_error_hours: int = 24
    freshness_warn_hours: int = 48
    funding_abs_max: float = 0.01
    funding_interval_hours: int = 8
    reconcile_tolerance_bps: float = 100.0
    reconcile_sample_hours: int = 48

    def __post_init__(self) -> None:
        if self.gap_warn_hours < 1 or self.gap_error_hours < self.gap_warn_hours:
            raise ValueError("need 1 <= gap_warn_hours <= gap_error_hours")
        if self.funding_abs_max <= 0:
            raise ValueError("funding_abs_max must be > 0")


@dataclass(frozen=True)
class DataQaGates:
    """Data-QA thresholds, including the drift settings read by
    :func:`cryptoalgo_core.data_qa.stats.drift_snapshot` (recent ``drift_recent_days`` vs the
    ``drift_reference_days`` before them; material when PSI > ``drift_psi_warn`` or KS > ``drift_ks_warn``,
    significant when the block-permutation p-value of the KS statistic is <= ``drift_alpha``; a feature warns
    when both hold)."""

    max_gap_hours: int = 12
    max_missing_share: float = 0.02
    max_feature_missing: float = 0.05
    target_rate_min: float = 0.15
    target_rate_max: float = 0.85
    min_labeled_rows: int = 500
    drift_psi_warn: float = 0.25
    drift_ks_warn: float = 0.2
    drift_alpha: float = 0.01
    drift_recent_days: int = 30
    drift_reference_days: int = 90
    top_features: int = 20

    def __post_init__(self) -> None:
        if not 0 <= self.target_rate_min < self.target_rate_max <= 1:
            raise ValueError("need 0 <= target_rate_min < target_rate_max <= 1")
        for name in ("max_missing_share", "max_feature_missing"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 1e-4 <= self.drift_alpha <= 0.5:  # the null takes max(500, 5 / alpha) permutations
            raise ValueError("drift_alpha must be in [0.0001, 0.5]")
        if self.drift_recent_days < 1 or self.drift_reference_days < 1 or self.top_features < 1:
            raise ValueError("drift windows and top_features must be >= 1")


@dataclass(frozen=True)
class PortfolioGates:
    """Portfolio readiness (``portfolio_readiness``): the basket of the coins that pass, weighted
    ``equal_risk`` (equal risk contributions under the sample covariance) or ``inverse_vol``; it passes when
    it holds >= ``min_coins`` coins, no pair's daily-return correlation exceeds ``max_pair_correlation``, the
    basket's max drawdown is <= ``max_basket_drawdown``, the share of days on which >= 2 coins are each in a
    drawdown deeper than ``coin_drawdown_limit`` is <= ``max_correlated_drawdown_share``, the share of
    position-hours held in the same direction by >= 2 coins at once is <= ``max_exposure_overlap``, and no coin
    carries more than ``max_risk_share`` of the basket's risk. A coin whose removal fixes a failed condition
    or raises the basket's Sharpe by more than ``min_sharpe_gain`` (per day) is dropped, greedily, one at a
    time."""

    min_coins: int = 2
    weighting: str = "equal_risk"
    max_pair_correlation: float = 0.7
    max_basket_drawdown: float = 0.25
    coin_drawdown_limit: float = 0.10
    max_correlated_drawdown_share: float = 0.15
    max_exposure_overlap: float = 0.6
    max_risk_share: float = 0.6
    min_sharpe_gain: float = 0.005

    def __post_init__(self) -> None:
        if self.min_coins < 1:
            raise ValueError("min_coins must be >= 1")
        if self.weighting not in ("equal_risk", "inverse_vol"):
            raise ValueError(f"weighting must be equal_risk or inverse_vol, got {self.weighting!r}")
        for name in ("max_pair_correlation", "max_basket_drawdown", "coin_drawdown_limit",
                     "max_correlated_drawdown_share", "max_exposure_overlap", "max_risk_share"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        if self.min_sharpe_gain < 0:
            raise ValueError("min_sharpe_gain must be >= 0")


@dataclass(frozen=True)
class Gates:
    market_data: MarketDataGates = field(default_factory=MarketDataGates)
    data_qa: DataQaGates = field(default_factory=DataQaGates)
    portfolio: PortfolioGates = field(default_factory=PortfolioGates)


def load_gates(path: Path | None = None) -> Gates:
    """gates.yaml (default ``config_dir()/gates.yaml``)."""
    path = path or config_dir() / "gates.yaml"
    return build_dataclass(Gates, read_yaml(path), str(path))
