"""config/synthetic.yaml: the synthetic market's parameters, parsed and validated (pure Python, no simulation).

Every section is parsed by :func:`~cryptoalgo_core.config.io.build_dataclass`; the frozen, hashable
:class:`SyntheticConfig` is the cache key of the simulation (:mod:`.simulate`). The model and the planted edge
are described in :mod:`cryptoalgo_core.synthetic`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from cryptoalgo_core.config.io import build_dataclass, config_dir, read_yaml
from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.timeutil import DAY_MS, parse_date_ms

__all__ = [
    "MECHANISMS",
    "ActivityConfig",
    "CoinParams",
    "EdgeShapeConfig",
    "EdgeStrengths",
    "FundingConfig",
    "SyntheticConfig",
    "VolatilityConfig",
    "calendar_bounds",
    "jump_share",
    "load_synthetic_config",
    "parse_synthetic_config",
    "shock_cholesky",
]

MECHANISMS: dict[str, str] = {
    "funding_reversal": (
        "When the coin's funding-rate z-score (rolling over the last settled 8-hourly rates, known at "
        "the bar close) is beyond +-z_enter, the next hourly log return drifts AGAINST the funding sign "
        "by strength bps (ramping linearly to full strength at |z| = z_full)."
    ),
    "lead_lag": (
        "The coin's next hourly log return loads on the lead coin's (BTC's) return of the bar just "
        "closed: strength bps per one configured hourly BTC standard deviation (clipped at lead_clip)."
    ),
    "regime_momentum": (
        "While the observable trend regime is on (24 h efficiency ratio of past closes entered above "
        "trend_enter_er and has not fallen below trend_exit_er), the next hourly log return drifts "
        "strength bps in the direction of the past-24 h return."
    ),
    "hidden_interaction": (
        "Not in the feature set verbatim (other window, non-linear, an interaction): the next hourly log "
        "return drifts strength bps times a(z) * g, where z is the coin's past hidden_window_h (36 h) return "
        "over its realised root-sum-square over the same bars, a(z) = (z/hidden_z_scale) / "
        "sqrt(1 + (z/hidden_z_scale)^2) a soft sign, and g = 1 when the mean log USD volume of the last "
        "hidden_volume_fast_h (6) bars exceeds that of the last hidden_volume_slow_h (96) bars, else "
        "hidden_quiet_gate (0.3): volume-confirmed momentum."
    ),
}
_MECH_KEYS = tuple(MECHANISMS)


# ----------------------------------------------------------------------------------------- dataclasses
@dataclass(frozen=True)
class VolatilityConfig:
    """Shared volatility-clustering and tail parameters (log-vol AR(1) components, stationary std)."""

    slow_half_life_h: float = 720.0
    slow_std: float = 0.30
    mid_half_life_h: float = 24.0
    mid_std: float = 0.25
    fast_half_life_h: float = 2.0
    fast_std: float = 0.20
    idio_half_life_h: float = 48.0
    idio_std: float = 0.15
    tail_dof: float = 5.0
    intraday_amplitude: float = 0.2
    intraday_peak_hour_utc: float = 15.0
    weekend_factor: float = 0.8

    def __post_init__(self) -> None:
        for name in ("slow", "mid", "fast", "idio"):
            if getattr(self, f"{name}_half_life_h") <= 0:
                raise ValueError(f"{name}_half_life_h must be > 0")
            if not 0 <= getattr(self, f"{name}_std") <= 1.5:
                raise ValueError(f"{name}_std must be in [0, 1.5]")
        if not 2.5 <= self.tail_dof <= 1000:
            raise ValueError("tail_dof must be in [2.5, 1000]")
        if not 0 <= self.intraday_amplitude < 1:
            raise ValueError("intraday_amplitude must be in [0, 1)")
        if not 0 < self.weekend_factor <= 2:
            raise ValueError("weekend_factor must be in (0, 2]")


@dataclass(frozen=True)
class FundingConfig:
    """8-hourly funding AR(1): persistence per settlement, share of innovation std from the past 8 h return."""

    persistence: float = 0.9
    return_link: float = 0.3
    zscore_window: int = 90

    def __post_init__(self) -> None:
        if not 0 <= self.persistence < 1:
            raise ValueError("persistence must be in [0, 1)")
        if not -1 <= self.return_link <= 1:
            raise ValueError("return_link must be in [-1, 1]")
        if self.zscore_window < 3:
            raise ValueError("zscore_window must be >= 3")


@dataclass(frozen=True)
class EdgeShapeConfig:
    """Shape of the planted mechanisms (shared by all coins); strengths live per coin."""

    funding_z_enter: float = 1.0
    funding_z_full: float = 2.0
    lead_clip: float = 4.0
    trend_window_h: int = 24
    trend_enter_er: float = 0.35
    trend_exit_er: float = 0.25
    hidden_window_h: int = 36
    hidden_z_scale: float = 1.5
    hidden_volume_fast_h: int = 6
    hidden_volume_slow_h: int = 96
    hidden_quiet_gate: float = 0.3
    max_strength_bps: float = 20.0

    def __post_init__(self) -> None:
        if not 0 <= self.funding_z_enter < self.funding_z_full:
            raise ValueError("need 0 <= funding_z_enter < funding_z_full")
        if self.lead_clip <= 0:
            raise ValueError("lead_clip must be > 0")
        if self.trend_window_h < 2:
            raise ValueError("trend_window_h must be >= 2")
        if not 0 < self.trend_exit_er <= self.trend_enter_er < 1:
            raise ValueError("need 0 < trend_exit_er <= trend_enter_er < 1")
        if self.hidden_window_h < 2:
            raise ValueError("hidden_window_h must be >= 2")
        if not (math.isfinite(self.hidden_z_scale) and self.hidden_z_scale > 0):
            raise ValueError("hidden_z_scale must be > 0")
        if not 1 <= self.hidden_volume_fast_h < self.hidden_volume_slow_h:
            raise ValueError("need 1 <= hidden_volume_fast_h < hidden_volume_slow_h")
        if not 0 <= self.hidden_quiet_gate <= 1:
            raise ValueError("hidden_quiet_gate must be in [0, 1]")
        if self.max_strength_bps <= 0:
            raise ValueError("max_strength_bps must be > 0")


@dataclass(frozen=True)
class ActivityConfig:
    """Volume and open-interest model parameters (shared by all coins)."""

    volume_vol_elasticity: float = 0.8
    volume_abs_return_coef: float = 0.35
    volume_noise_std: float = 0.35
    volume_noise_half_life_h: float = 6.0
    oi_noise_std: float = 0.25
    oi_half_life_h: float = 336.0
    oi_funding_link: float = 0.05

    def __post_init__(self) -> None:
        if self.volume_noise_std < 0 or self.oi_noise_std < 0:
            raise ValueError("noise std values must be >= 0")
        if self.volume_noise_half_life_h <= 0 or self.oi_half_life_h <= 0:
            raise ValueError("half lives must be > 0")


@dataclass(frozen=True)
class EdgeStrengths:
    """Planted strengths in bps of hourly log return per unit driver (0 = mechanism off)."""

    funding_reversal: float = 0.0
    lead_lag: float = 0.0
    regime_momentum: float = 0.0
    hidden_interaction: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in _MECH_KEYS}


@dataclass(frozen=True)
class CoinParams:
    """Per-coin marginal parameters (see config/synthetic.yaml for units)."""

    name: str
    start_price: float
    annual_vol: float
    jump_prob: float
    jump_scale: float
    range_scale: float
    funding_mean: float
    funding_std: float
    volume_usd_per_hour: float
    open_interest_usd: float
    edge: EdgeStrengths = field(default_factory=EdgeStrengths)


@dataclass(frozen=True)
class _CoinFields:
    """One coin's YAML mapping (checked further in :func:`_parse_coin`)."""

    start_price: float
    annual_vol: float
    funding_mean: float
    funding_std: float
    volume_usd_per_hour: float
    open_interest_usd: float
    jump_prob: float = 0.0
    jump_scale: float = 0.0
    range_scale: float = 1.0
    edge: EdgeStrengths = field(default_factory=EdgeStrengths)


@dataclass(frozen=True)
class SyntheticConfig:
    """Parsed, validated config/synthetic.yaml. Frozen and hashable (used as the simulation cache key)."""

    seed: int
    origin_ms: int
    end_ms: int
    chunk_hours: int
    lead_coin: str
    coins: tuple[CoinParams, ...]
    correlation: tuple[tuple[float, ...], ...]  # full matrix, rows/cols in `coins` order
    volatility: VolatilityConfig = field(default_factory=VolatilityConfig)
    funding: FundingConfig = field(default_factory=FundingConfig)
    edge_shape: EdgeShapeConfig = field(default_factory=EdgeShapeConfig)
    activity: ActivityConfig = field(default_factory=ActivityConfig)

    @property
    def coin_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.coins)

    def coin(self, name: str) -> CoinParams:
        for c in self.coins:
            if c.name == name:
                return c
        raise ConfigError(f"synthetic: unknown coin {name!r}; configured coins: {list(self.coin_names)}")


@dataclass(frozen=True)
class _Calendar:
    origin: str = "2020-01-01"
    end: str = "2026-01-01"
    chunk_hours: int = 1024


@dataclass(frozen=True)
class _SyntheticFile:
    """The shape of synthetic.yaml (coins and correlation are mappings keyed by coin, checked by the loader)."""

    seed: int = 0
    calendar: _Calendar = field(default_factory=_Calendar)
    lead_coin: str | None = None
    coins: dict[str, Any] = field(default_factory=dict)
    correlation: dict[str, Any] = field(default_factory=dict)
    volatility: VolatilityConfig = field(default_factory=VolatilityConfig)
    funding: FundingConfig = field(default_factory=FundingConfig)
    edge_shape: EdgeShapeConfig = field(default_factory=EdgeShapeConfig)
    activity: ActivityConfig = field(default_factory=ActivityConfig)


def _cholesky(mat: list[list[float]]) -> list[list[float]] | None:
    """Plain-float Cholesky (deterministic IEEE ops, no BLAS). None if not positive definite."""
    n = len(mat)
    low = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1):
            acc = mat[i][j]
            for k in range(j):
                acc -= low[i][k] * low[j][k]
            if i == j:
                if acc <= 1e-12:
                    return None
                low[i][j] = math.sqrt(acc)
            else:
                low[i][j] = acc / low[j][j]
    return low


def _positive(where: str, key: str, value: float, *, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        rel = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{where}.{key}: must be {rel}, got {value!r}")

def _parse_coin(name: str, spec: Any, where: str, shape: EdgeShapeConfig) -> CoinParams:
    cf = build_dataclass(_CoinFields, spec, where)
    for key in (
        "start_price",
        "annual_vol",
        "range_scale",
        "funding_std",
        "volume_usd_per_hour",
        "open_interest_usd",
    ):
        _positive(where, key, getattr(cf, key))
    for key in ("jump_prob", "jump_scale"):
        _positive(where, key, getattr(cf, key), allow_zero=True)
    if cf.annual_vol > 10:
        raise ConfigError(f"{where}.annual_vol: {cf.annual_vol} is implausible (must be <= 10)")
    if cf.jump_prob > 0.2:
        raise ConfigError(f"{where}.jump_prob: must be <= 0.2, got {cf.jump_prob}")
    if cf.jump_prob * cf.jump_scale**2 >= 0.5:
        raise ConfigError(f"{where}: jump_prob * jump_scale^2 must be < 0.5 (jump share of variance)")
    if abs(cf.funding_mean) > 0.005:
        raise ConfigError(f"{where}.funding_mean: |value| must be <= 0.005 per 8 h, got {cf.funding_mean}")
    if cf.funding_std > 0.005:
        raise ConfigError(f"{where}.funding_std: must be <= 0.005 per 8 h, got {cf.funding_std}")
    for key in _MECH_KEYS:
        value = getattr(cf.edge, key)
        if not (math.isfinite(value) and 0 <= value <= shape.max_strength_bps):
            raise ConfigError(
                f"{where}.edge.{key}: strength {value!r} out of range [0, {shape.max_strength_bps}] bps"
            )
    return CoinParams(name=name, **{f.name: getattr(cf, f.name) for f in fields(_CoinFields)})


def _parse_correlation(raw: Any, names: list[str], where: str) -> tuple[tuple[float, ...], ...]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping coin -> {{coin: corr}}")
    n = len(names)
    mat: list[list[float | None]] = [[1.0 if i == j else None for j in range(n)] for i in range(n)]
    for a, row in raw.items():
        if a not in names:
            raise ConfigError(f"{where}.{a}: unknown coin key {a!r}; configured coins: {names}")
        if not isinstance(row, dict):
            raise ConfigError(f"{where}.{a}: expected a mapping coin -> correlation")
        for b, value in row.items():
            key = f"{where}.{a}.{b}"
            if b not in names:
                raise ConfigError(f"{key}: unknown coin key {b!r}; configured coins: {names}")
            if a == b:
                raise ConfigError(f"{key}: self-correlation is always 1; remove this entry")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{key}: expected a number, got {value!r}")
            v = float(value)
            if not -1.0 <= v <= 1.0:
                raise ConfigError(f"{key}: correlation {v} not in [-1, 1]")
            i, j = names.index(a), names.index(b)
            if mat[i][j] is not None:
                raise ConfigError(f"{key}: pair given twice")
            mat[i][j] = mat[j][i] = v
    missing = [f"{names[i]}-{names[j]}" for i in range(n) for j in range(i + 1, n) if mat[i][j] is None]
    if missing:
        raise ConfigError(f"{where}: missing pair(s) {missing}")
    full = [[float(v) for v in row if v is not None] for row in mat]
    if _cholesky(full) is None:
        eig = float(np.linalg.eigvalsh(np.array(full)).min())
        raise ConfigError(f"{where}: correlation matrix is not positive definite (min eigenvalue {eig:.4g})")
    return tuple(tuple(row) for row in full)

def load_synthetic_config(path: Path | None = None) -> SyntheticConfig:
    """Load and validate ``config/synthetic.yaml`` (default ``config_dir()/"synthetic.yaml"``).

    Raises ConfigError naming the file, the key and the problem (unknown keys are errors).
    """
    path = path or config_dir() / "synthetic.yaml"
    data = read_yaml(path)
    return parse_synthetic_config(data, str(path))


def parse_synthetic_config(data: Mapping[str, Any], where: str = "synthetic.yaml") -> SyntheticConfig:
    """Validate an already-read mapping (same rules and messages as :func:`load_synthetic_config`)."""
    f = build_dataclass(_SyntheticFile, dict(data), where)
    if f.seed < 0:
        raise ConfigError(f"{where}: seed must be a non-negative integer, got {f.seed!r}")
    times: dict[str, int] = {}
    for key in ("origin", "end"):
        raw = getattr(f.calendar, key)
        try:
            times[key] = parse_date_ms(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: calendar.{key}: {exc}") from None
        if times[key] % DAY_MS:
            raise ConfigError(f"{where}: calendar.{key}: {raw!r} must be a UTC midnight (00:00)")
    if times["end"] - times["origin"] < 7 * DAY_MS:
        raise ConfigError(f"{where}: calendar.end must be at least 7 days after calendar.origin")
    chunk = f.calendar.chunk_hours
    if not 24 <= chunk <= 100_000:
        raise ConfigError(f"{where}: calendar.chunk_hours must be an integer in [24, 100000], got {chunk!r}")

    if not f.coins:
        raise ConfigError(f"{where}: coins must be a non-empty mapping coin -> parameters")
    names = list(f.coins)
    for n in names:
        if not re.match(r"^[A-Z0-9]{2,15}$", n):
            raise ConfigError(f"{where}: coins.{n}: coin name must be 2-15 upper-case letters/digits")
    shape = f.edge_shape
    coins = tuple(_parse_coin(n, s, f"{where}: coins.{n}", shape) for n, s in f.coins.items())
    lead = names[0] if f.lead_coin is None else f.lead_coin
    if lead not in names:
        raise ConfigError(f"{where}: lead_coin: unknown coin key {lead!r}; configured coins: {names}")
    lead_params = coins[names.index(lead)]
    if lead_params.edge.lead_lag != 0:
        raise ConfigError(f"{where}: coins.{lead}.edge.lead_lag: the lead coin cannot lead itself; must be 0")
    corr = (
        _parse_correlation(f.correlation, names, f"{where}: correlation")
        if len(names) > 1
        else ((1.0,),)
    )
    cfg = SyntheticConfig(
        seed=f.seed,
        origin_ms=times["origin"],
        end_ms=times["end"],
        chunk_hours=chunk,
        lead_coin=str(lead),
        coins=coins,
        correlation=corr,
        volatility=f.volatility,
        funding=f.funding,
        edge_shape=shape,
        activity=f.activity,
    )
    try:
        shock_cholesky(cfg)
    except ValueError as exc:
        raise ConfigError(f"{where}: correlation: {exc}") from None
    return cfg


def calendar_bounds(cfg: SyntheticConfig) -> tuple[int, int]:
    """(origin_ms, end_ms) of the fixed hourly calendar; candle open times are origin + k h < end."""
    return cfg.origin_ms, cfg.end_ms


def jump_share(c: CoinParams) -> float:
    return c.jump_prob * c.jump_scale**2


def shock_cholesky(cfg: SyntheticConfig) -> list[list[float]]:
    """Cholesky factor of the Gaussian correlation that yields the CONFIGURED return correlation.

    Realised corr(r_i, r_j) = rho^G_ij * sqrt(w_i w_j) * exp(-idio_std^2): jumps are idiosyncratic
    (diffusive share w_i) and the idiosyncratic log-vol part decorrelates sigma_i and sigma_j. We divide
    those attenuations out. ValueError if the compensated matrix is not positive definite.
    """
    n = len(cfg.coins)
    att = math.exp(-(cfg.volatility.idio_std**2))
    w = [1.0 - jump_share(c) for c in cfg.coins]
    g = [
        [1.0 if i == j else cfg.correlation[i][j] / (math.sqrt(w[i] * w[j]) * att) for j in range(n)]
        for i in range(n)
    ]
    worst = max((abs(g[i][j]) for i in range(n) for j in range(n) if i != j), default=0.0)
    low = _cholesky(g) if worst < 1 else None
    if low is None:
        raise ValueError(
            "after compensating for jumps and idiosyncratic volatility the correlation matrix is not "
            "positive definite; lower the correlations, jump_prob/jump_scale or volatility.idio_std"
        )
    return low
