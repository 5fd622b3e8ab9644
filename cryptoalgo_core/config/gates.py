"""config/gates.yaml: the thresholds of the market-data checks and of the data-QA gate (one place each)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptoalgo_core.config.io import build_dataclass, config_dir, read_yaml

__all__ = ["DataQaGates", "Gates", "KillSwitchGates", "LiveGates", "MarketDataGates", "PortfolioGates",
           "RobustnessGates", "load_gates"]


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
class RobustnessGates:
    """Robustness report, score and readiness tier (``robustness_report``; rules in
    :mod:`cryptoalgo_core.robustness.tiers`). Hard gates (any failure -> REJECT): holdout return > 0, holdout
    Sharpe > 0, holdout trades >= the preset's gate minimum, CV net edge > 0 bps, fee/edge <=
    ``max_fee_edge_ratio``, Monte Carlo p95 max drawdown <= ``max_drawdown_p95``, probability of ruin <=
    ``max_prob_ruin`` (equity below ``ruin_floor``), share of positive folds >= ``min_positive_folds``,
    parameter stability >= ``min_stability``, stop-loss share < ``max_stop_loss_share`` (CV and holdout).
    Then the score (``weights``, points per component, summing to 100) picks the tier by ``bands``
    (lower bound of RESEARCH, PAPER, PILOT, FULL); PILOT and FULL also need DSR >= ``min_dsr`` and the CSCV
    probability that the in-sample best loses out of sample <= ``max_prob_oos_loss`` (else the tier is capped
    at PAPER): money tiers need statistical evidence, not only points. (PBO itself does not separate a real edge
    from noise -- when every trial shares an edge, which of them ranks first is a coin flip, PBO ~ 0.5 -- so it
    enters the score, not a gate.) The Monte Carlo drawdown and ruin gates look at ``mc_horizon_days`` of
    trades (the bootstrap draws that many days' worth of the track's trades per path), so a guardrail does
    not tighten with the length of the track."""

    max_fee_edge_ratio: float = 0.8
    max_drawdown_p95: float = 0.50
    min_return_to_drawdown: float = 1.0
    max_prob_ruin: float = 0.01
    ruin_floor: float = 0.5
    min_positive_folds: float = 0.6
    min_stability: float = 0.5
    max_stop_loss_share: float = 0.7
    min_dsr: float = 0.9
    max_prob_oos_loss: float = 0.2
    mc_horizon_days: int = 365
    bands: dict[str, float] = field(default_factory=lambda: {"RESEARCH": 0.0, "PAPER": 40.0, "PILOT": 55.0,
                                                             "FULL": 75.0})
    weights: dict[str, float] = field(default_factory=lambda: {
        "dsr": 25.0, "pbo": 15.0, "cv_consistency": 15.0, "stability": 10.0, "drawdown": 10.0, "holdout": 15.0,
        "edge": 10.0})
    holdout_sharpe_full: float = 2.0  # annualised holdout Sharpe that earns the holdout component's full points
    edge_full_bps: float = 20.0       # CV net edge per trade (bps) that earns the edge component's full points
    mc_paths: int = 10_000            # full mode; screen mode uses screen_mc_paths
    screen_mc_paths: int = 2_000
    pbo_splits: int = 16
    pbo_max_trials: int = 200         # complete trials re-traded for PBO (even spread over the study); screen: /4
    stability_neighbours: int = 24    # screen: /3
    stability_radius: float = 0.1     # x each strategy parameter's range
    stability_tolerance: float = 0.5  # a neighbour is stable when objective >= chosen - tol x max(|chosen|, 1 bps)
    seed: int = 20261201

    def __post_init__(self) -> None:
        from cryptoalgo_core.config.profile import TIERS

        if set(self.bands) != set(TIERS[1:]):
            raise ValueError(f"bands needs exactly {list(TIERS[1:])}, got {sorted(self.bands)}")
        lows = [self.bands[t] for t in TIERS[1:]]
        if lows != sorted(lows) or lows[0] != 0.0 or lows[-1] > 100:
            raise ValueError(f"bands must rise from RESEARCH 0 to FULL <= 100 in tier order, got {self.bands}")
        known = {"dsr", "pbo", "cv_consistency", "stability", "drawdown", "holdout", "edge"}
        if set(self.weights) != known:
            raise ValueError(f"weights needs exactly {sorted(known)}, got {sorted(self.weights)}")
        if any(v < 0 for v in self.weights.values()) or abs(sum(self.weights.values()) - 100.0) > 1e-6:
            raise ValueError(f"weights must be >= 0 and sum to 100, got {sum(self.weights.values())}")
        for name in ("max_drawdown_p95", "max_prob_ruin", "min_positive_folds", "min_stability",
                     "max_stop_loss_share", "min_dsr", "max_prob_oos_loss"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1]")
        if not 0 < self.ruin_floor < 1:
            raise ValueError("ruin_floor must be in (0, 1)")
        if self.mc_horizon_days < 1:
            raise ValueError("mc_horizon_days must be >= 1")
        if self.mc_paths < 10_000 or self.screen_mc_paths < 100:
            raise ValueError("mc_paths must be >= 10000 (screen_mc_paths >= 100)")
        if self.pbo_splits < 2 or self.pbo_splits % 2 or self.pbo_max_trials < 2:
            raise ValueError("pbo_splits must be even and >= 2, pbo_max_trials >= 2")
        if self.stability_neighbours < 1 or not 0 < self.stability_radius <= 1 or self.stability_tolerance < 0:
            raise ValueError("stability_neighbours >= 1, stability_radius in (0, 1], stability_tolerance >= 0")
        if self.min_return_to_drawdown < 0:
            raise ValueError("min_return_to_drawdown must be >= 0")
        if self.holdout_sharpe_full <= 0 or self.edge_full_bps <= 0 or self.max_fee_edge_ratio <= 0:
            raise ValueError("holdout_sharpe_full, edge_full_bps and max_fee_edge_ratio must be > 0")


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
class KillSwitchGates:
    """The kill switches on ``paper_performance`` (:mod:`cryptoalgo_core.live.switches`). A switch fails past its
    limit (the coin HALTS) and warns inside ``warn_fraction`` of it (the coin is REDUCING: new positions at
    ``reducing_scale``): upper limits warn above ``warn_fraction * limit``, lower limits below ``limit /
    warn_fraction``. Each switch needs enough evidence before it judges (``min_*``)."""

    max_daily_drawdown: float = 0.05  # worst peak-to-trough of the paper equity inside one UTC day
    min_win_rate: float = 0.25  # of the last win_window_trades closed trades ...
    win_window_trades: int = 20
    min_trades: int = 10  # ... judged from this many closed trades (also for fee/edge)
    max_brier_increase: float = 0.05  # live direction Brier score minus the validation's
    min_calibration_rows: int = 50  # resolved (barrier-touched) live predictions
    max_fee_edge_expansion: float = 2.0  # live fee/edge ratio over the validation's
    max_replay_mismatches: int = 0  # paper trades that differ from the backtest replay of the window
    max_replay_pnl_bps: float = 1.0  # |paper - replay| return of the window, bps
    warn_fraction: float = 0.8
    reducing_scale: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_daily_drawdown", "min_win_rate", "warn_fraction", "reducing_scale"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1]")
        for name in ("win_window_trades", "min_trades", "min_calibration_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.min_trades > self.win_window_trades:
            raise ValueError("min_trades must be <= win_window_trades")
        if self.max_brier_increase <= 0 or self.max_fee_edge_expansion <= 0 or self.max_replay_pnl_bps < 0:
            raise ValueError("max_brier_increase and max_fee_edge_expansion must be > 0, max_replay_pnl_bps >= 0")
        if self.max_replay_mismatches < 0:
            raise ValueError("max_replay_mismatches must be >= 0")


@dataclass(frozen=True)
class LiveGates:
    """Paper trading (``signals``, ``paper_book``, ``paper_performance``): the position scale per readiness tier
    (times the profile's ``position_scale``), the trailing history the live features are built from
    (``history_days``; each tick checks it spans >= 4x the longest feature warm-up, so the trailing-window
    features equal the full-history ones),
    how many missed hours one tick catches up (``max_catchup_hours``; older ones are logged as missed, never
    traded late), the retrain cadence (a retrain runs only while every switch is ``ok``) and the kill switches."""

    tier_scale: dict[str, float] = field(default_factory=lambda: {"PILOT": 0.25, "FULL": 0.5})
    history_days: int = 180
    max_catchup_hours: int = 72
    retrain_days: int = 30
    kill_switches: KillSwitchGates = field(default_factory=KillSwitchGates)

    def __post_init__(self) -> None:
        for tier, v in self.tier_scale.items():
            if tier not in ("PILOT", "FULL") or not 0 < v <= 1:
                raise ValueError(f"tier_scale: {tier}={v}: tiers PILOT/FULL only, scale in (0, 1]")
        if self.history_days < 30 or self.max_catchup_hours < 1 or self.retrain_days < 1:
            raise ValueError("history_days must be >= 30, max_catchup_hours and retrain_days >= 1")


@dataclass(frozen=True)
class Gates:
    market_data: MarketDataGates = field(default_factory=MarketDataGates)
    data_qa: DataQaGates = field(default_factory=DataQaGates)
    robustness: RobustnessGates = field(default_factory=RobustnessGates)
    portfolio: PortfolioGates = field(default_factory=PortfolioGates)
    live: LiveGates = field(default_factory=LiveGates)


def load_gates(path: Path | None = None) -> Gates:
    """gates.yaml (default ``config_dir()/gates.yaml``)."""
    path = path or config_dir() / "gates.yaml"
    return build_dataclass(Gates, read_yaml(path), str(path))
