"""Deterministic synthetic crypto market: the embedded default data source.

One fixed path per seed on a fixed hourly calendar ``[origin, end)`` (both in ``config/synthetic.yaml``).
All configured coins are simulated jointly (cross-correlated), whichever coins are requested, and the
full path is cached in-process per config, so any window is a slice of the same path: bit-identical
across runs and across requested windows. Random innovations are drawn in fixed chunks of
``chunk_hours`` hours, each seeded from ``SeedSequence([seed, chunk_index])``; extending the calendar
end therefore never changes earlier history.

Model (per coin ``i``, bar ``t`` = the hour opening at ``origin + t h``; ``r`` are log returns)::

    r[t,i]     = mu[t,i] + sigma[t,i] * shock[t,i]
    shock[t,i] = sqrt(w_i) * sqrt(s_t) * (L z_t)_i + J[t,i]             (unit variance)
    sigma[t,i] = sigma_i / sqrt(8760) * season(t) * exp(X[t,i] - V_i)    (E sigma^2 = sigma_i^2 / 8760)
    X[t,i]     = slow_t + mid_t + fast_t + idio[t,i]                     (Gaussian AR(1) log-vol parts)
    mu[t+1,i]  = 1e-4 * ( S_fr[i] * F[t,i] + S_ll[i] * L[t,i] + S_rm[i] * M[t,i] )

``z_t`` iid N(0, I); ``L`` the Cholesky factor of the (compensated) correlation matrix; ``s_t`` a
common inverse-chi-square variance mixer (multivariate Student-t, ``tail_dof``); ``J`` rare
idiosyncratic Gaussian jumps; ``w_i = 1 - jump_prob * jump_scale^2``. The planted drift ``mu[t+1]``
is a linear function of three drivers that are all OBSERVABLE at the close of bar ``t``:

* ``F`` funding_reversal: ``-sign(z) * clip((|z| - z_enter) / (z_full - z_enter), 0, 1)`` where ``z``
  is the rolling z-score of the last settled funding rates (settled at or before the close of ``t``);
* ``L`` lead_lag: ``clip(r[t, lead] / sigma_lead_hourly, -lead_clip, lead_clip)`` - the lead coin's
  (BTC's) return of bar ``t`` in units of its configured hourly volatility;
* ``M`` regime_momentum: ``trend[t] * sign(sum r[t-23..t])`` where ``trend`` is the two-state
  trend/chop regime, a hysteresis state machine on the 24 h efficiency ratio of past closes.

Strengths are in basis points of log return per hour per unit driver. Noise coins have all strengths
0, so their returns are a martingale difference sequence w.r.t. every observable.

This module is pure (numpy/pandas/numba); the only I/O is :func:`load_synthetic_config`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

from cryptoalgo_core.config import build_dataclass, config_dir, read_yaml
from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, parse_date_ms

HOURS_PER_YEAR = 8760
FUNDING_EVERY_H = 8
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
}
_MECH_KEYS = tuple(MECHANISMS)
_N_NORMAL_FIXED = 4  # slow, mid, fast log-vol innovations + spare column (keeps layout stable)
_NORMAL_PER_COIN = 7  # z, jump size, idio vol, funding, volume, oi, spare
_UNIFORM_PER_COIN = 3  # jump occurrence, high, low


# ----------------------------------------------------------------------------------------- config
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
    """Scalar YAML fields of one coin (validated by build_dataclass, then checked in the loader)."""

    start_price: float = 1.0
    annual_vol: float = 0.5
    jump_prob: float = 0.0
    jump_scale: float = 0.0
    range_scale: float = 1.0
    funding_mean: float = 0.0001
    funding_std: float = 0.0001
    volume_usd_per_hour: float = 1e7
    open_interest_usd: float = 1e8


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


_TOP_KEYS = {
    "seed",
    "calendar",
    "lead_coin",
    "coins",
    "correlation",
    "volatility",
    "funding",
    "edge_shape",
    "activity",
}
_CAL_KEYS = {"origin", "end", "chunk_hours"}
_COIN_KEYS = {f for f in _CoinFields.__dataclass_fields__} | {"edge"}


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
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - _COIN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_COIN_KEYS)}")
    scalars = {k: v for k, v in spec.items() if k != "edge"}
    missing = sorted(
        set(_CoinFields.__dataclass_fields__) - set(scalars) - {"jump_prob", "jump_scale", "range_scale"}
    )
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    cf = build_dataclass(_CoinFields, scalars, where)
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
    edge = build_dataclass(EdgeStrengths, spec.get("edge"), f"{where}.edge")
    for key in _MECH_KEYS:
        value = getattr(edge, key)
        if not (math.isfinite(value) and 0 <= value <= shape.max_strength_bps):
            raise ConfigError(
                f"{where}.edge.{key}: strength {value!r} out of range [0, {shape.max_strength_bps}] bps"
            )
    return CoinParams(name=name, edge=edge, **{k: getattr(cf, k) for k in _CoinFields.__dataclass_fields__})


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
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(_TOP_KEYS)}")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}: seed must be a non-negative integer, got {seed!r}")
    cal = data.get("calendar") or {}
    if not isinstance(cal, dict):
        raise ConfigError(f"{where}: calendar must be a mapping")
    bad = sorted(set(cal) - _CAL_KEYS)
    if bad:
        raise ConfigError(f"{where}: calendar: unknown key(s) {bad}; allowed: {sorted(_CAL_KEYS)}")
    times: dict[str, int] = {}
    for key, default in (("origin", "2020-01-01"), ("end", "2026-01-01")):
        raw = cal.get(key, default)
        try:
            times[key] = parse_date_ms(str(raw))
        except ValueError as exc:
            raise ConfigError(f"{where}: calendar.{key}: {exc}") from None
        if times[key] % DAY_MS:
            raise ConfigError(f"{where}: calendar.{key}: {raw!r} must be a UTC midnight (00:00)")
    if times["end"] - times["origin"] < 7 * DAY_MS:
        raise ConfigError(f"{where}: calendar.end must be at least 7 days after calendar.origin")
    chunk = cal.get("chunk_hours", 1024)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or not 24 <= chunk <= 100_000:
        raise ConfigError(f"{where}: calendar.chunk_hours must be an integer in [24, 100000], got {chunk!r}")

    vol = build_dataclass(VolatilityConfig, data.get("volatility"), f"{where}: volatility")
    fund = build_dataclass(FundingConfig, data.get("funding"), f"{where}: funding")
    shape = build_dataclass(EdgeShapeConfig, data.get("edge_shape"), f"{where}: edge_shape")
    act = build_dataclass(ActivityConfig, data.get("activity"), f"{where}: activity")

    raw_coins = data.get("coins")
    if not isinstance(raw_coins, dict) or not raw_coins:
        raise ConfigError(f"{where}: coins must be a non-empty mapping coin -> parameters")
    names = [str(n) for n in raw_coins]
    for n in names:
        if not re.match(r"^[A-Z0-9]{2,15}$", n):
            raise ConfigError(f"{where}: coins.{n}: coin name must be 2-15 upper-case letters/digits")
    coins = tuple(_parse_coin(str(n), s, f"{where}: coins.{n}", shape) for n, s in raw_coins.items())
    lead = data.get("lead_coin", names[0])
    if lead not in names:
        raise ConfigError(f"{where}: lead_coin: unknown coin key {lead!r}; configured coins: {names}")
    lead_params = coins[names.index(lead)]
    if lead_params.edge.lead_lag != 0:
        raise ConfigError(f"{where}: coins.{lead}.edge.lead_lag: the lead coin cannot lead itself; must be 0")
    corr = (
        _parse_correlation(data.get("correlation") or {}, names, f"{where}: correlation")
        if len(names) > 1
        else ((1.0,),)
    )
    cfg = SyntheticConfig(
        seed=seed,
        origin_ms=times["origin"],
        end_ms=times["end"],
        chunk_hours=chunk,
        lead_coin=str(lead),
        coins=coins,
        correlation=corr,
        volatility=vol,
        funding=fund,
        edge_shape=shape,
        activity=act,
    )
    try:
        _shock_cholesky(cfg)
    except ValueError as exc:
        raise ConfigError(f"{where}: correlation: {exc}") from None
    return cfg


# ----------------------------------------------------------------------------------- simulation
def calendar_bounds(cfg: SyntheticConfig) -> tuple[int, int]:
    """(origin_ms, end_ms) of the fixed hourly calendar; candle open times are origin + k h < end."""
    return cfg.origin_ms, cfg.end_ms


def _phi(half_life_h: float) -> float:
    return 0.5 ** (1.0 / half_life_h)


def _jump_share(c: CoinParams) -> float:
    return c.jump_prob * c.jump_scale**2


def _shock_cholesky(cfg: SyntheticConfig) -> list[list[float]]:
    """Cholesky factor of the Gaussian correlation that yields the CONFIGURED return correlation.

    Realised corr(r_i, r_j) = rho^G_ij * sqrt(w_i w_j) * exp(-idio_std^2): jumps are idiosyncratic
    (diffusive share w_i) and the idiosyncratic log-vol part decorrelates sigma_i and sigma_j. We divide
    those attenuations out. ValueError if the compensated matrix is not positive definite.
    """
    n = len(cfg.coins)
    att = math.exp(-(cfg.volatility.idio_std**2))
    w = [1.0 - _jump_share(c) for c in cfg.coins]
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


def _season(cfg: SyntheticConfig, n_hours: int) -> np.ndarray:
    """Deterministic hour-of-day x weekend volatility multiplier, mean-square 1 over a week."""
    v = cfg.volatility
    hour0 = cfg.origin_ms // HOUR_MS
    abs_h = hour0 + np.arange(n_hours, dtype=np.int64)
    week_h = np.arange(168, dtype=np.int64)

    def raw(h: np.ndarray) -> np.ndarray:
        hod = (h % 24).astype(np.float64)
        dow = (h // 24 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        s = 1.0 + v.intraday_amplitude * np.cos(2.0 * np.pi * (hod - v.intraday_peak_hour_utc) / 24.0)
        return np.where(dow >= 5, v.weekend_factor, 1.0) * s

    norm = math.sqrt(float(np.mean(raw(week_h) ** 2)))
    return raw(abs_h) / norm


def _draws(cfg: SyntheticConfig, n_hours: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random innovations for hours [0, n_hours): normals, uniforms, chi-square mixer.

    Drawn in fixed chunks of cfg.chunk_hours, chunk k from SeedSequence([seed, k]) with a fixed column
    layout, so hour h's draws depend only on (seed, h, number of coins) - never on the window asked for.
    """
    n = len(cfg.coins)
    ch = cfg.chunk_hours
    n_chunks = -(-n_hours // ch)
    kn = _N_NORMAL_FIXED + _NORMAL_PER_COIN * n
    ku = _UNIFORM_PER_COIN * n
    normals = np.empty((n_chunks * ch, kn))
    unif = np.empty((n_chunks * ch, ku))
    chi = np.empty(n_chunks * ch)
    dof = cfg.volatility.tail_dof
    for k in range(n_chunks):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, k])))
        sl = slice(k * ch, (k + 1) * ch)
        normals[sl] = rng.standard_normal((ch, kn))
        unif[sl] = rng.random((ch, ku))
        chi[sl] = 2.0 * rng.standard_gamma(dof / 2.0, ch)
    return normals[:n_hours], unif[:n_hours], chi[:n_hours]


@njit(cache=True)
def _ar1(eps: np.ndarray, phi: float, std: float) -> np.ndarray:  # pragma: no cover - numba
    """Stationary Gaussian AR(1) with given stationary std, driven by N(0,1) eps (column-wise)."""
    out = np.empty_like(eps)
    scale = std * np.sqrt(1.0 - phi * phi)
    for j in range(eps.shape[1]):
        out[0, j] = std * eps[0, j]
        for t in range(1, eps.shape[0]):
            out[t, j] = phi * out[t - 1, j] + scale * eps[t, j]
    return out


@njit(cache=True)
def _correlate(low: np.ndarray, z: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    """(L z_t) per row with explicit loops (no BLAS: identical rounding everywhere)."""
    n_t, n = z.shape
    out = np.zeros((n_t, n))
    for t in range(n_t):
        for i in range(n):
            acc = 0.0
            for k in range(i + 1):
                acc += low[i, k] * z[t, k]
            out[t, i] = acc
    return out


@njit(cache=True)
def _recursion(  # pragma: no cover - numba
    sig: np.ndarray,
    shock: np.ndarray,
    fund_eps: np.ndarray,
    f_mean: np.ndarray,
    f_std: np.ndarray,
    f_phi: float,
    f_link: float,
    z_window: int,
    z_enter: float,
    z_full: float,
    lead: int,
    lead_sigma: float,
    lead_clip: float,
    win: int,
    er_enter: float,
    er_exit: float,
    sigma_h: np.ndarray,
    s_fr: np.ndarray,
    s_ll: np.ndarray,
    s_rm: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Sequential state from the origin. Only +,-,*,/,sqrt: bit-reproducible.

    At the close of bar t: settle funding if the close is on the 8 h grid (uses returns of bars
    t-7..t, all closed), update the funding z-score, trend regime and lead return, and set the
    planted drift of bar t+1 from these observables only.
    """
    n_t, n = sig.shape
    r = np.empty((n_t, n))
    mu = np.zeros((n_t, n))
    fz = np.full((n_t, n), np.nan)
    fdrv = np.zeros((n_t, n))
    ldrv = np.zeros((n_t, n))
    r24 = np.full((n_t, n), np.nan)
    er = np.full((n_t, n), np.nan)
    trend = np.zeros((n_t, n))
    mdrv = np.zeros((n_t, n))
    n_settle = n_t // 8 + 1
    fund = np.empty((n_settle, n))
    state = np.zeros(n)
    cur_z = np.full(n, np.nan)
    cur_f = np.zeros(n)
    innov = np.sqrt(1.0 - f_phi * f_phi)
    link_rest = np.sqrt(1.0 - f_link * f_link)
    for i in range(n):
        fund[0, i] = f_mean[i] + f_std[i] * fund_eps[0, i]
    k = 1
    for t in range(n_t):
        for i in range(n):
            r[t, i] = mu[t, i] + sig[t, i] * shock[t, i]
        if (t + 1) % 8 == 0:  # close of bar t is a settlement time
            for i in range(n):
                r8 = 0.0
                for j in range(t - 7, t + 1):
                    r8 += r[j, i]
                x = r8 / (sigma_h[i] * np.sqrt(8.0))
                x = min(max(x, -4.0), 4.0)
                dev = fund[k - 1, i] - f_mean[i]
                fund[k, i] = (
                    f_mean[i] + f_phi * dev + f_std[i] * innov * (f_link * x + link_rest * fund_eps[t, i])
                )
                if k + 1 >= z_window:
                    m = 0.0
                    for j in range(k + 1 - z_window, k + 1):
                        m += fund[j, i]
                    m /= z_window
                    v = 0.0
                    for j in range(k + 1 - z_window, k + 1):
                        v += (fund[j, i] - m) * (fund[j, i] - m)
                    sd = np.sqrt(v / (z_window - 1))
                    z = (fund[k, i] - m) / sd if sd > 0 else 0.0
                    cur_z[i] = z
                    a = (abs(z) - z_enter) / (z_full - z_enter)
                    a = min(max(a, 0.0), 1.0)
                    cur_f[i] = -a if z > 0 else a
            k += 1
        lr = r[t, lead] / lead_sigma
        lr = min(max(lr, -lead_clip), lead_clip)
        for i in range(n):
            fz[t, i] = cur_z[i]
            fdrv[t, i] = cur_f[i]
            ldrv[t, i] = lr
            if t >= win - 1:
                s = 0.0
                a_sum = 0.0
                for j in range(t - win + 1, t + 1):
                    s += r[j, i]
                    a_sum += abs(r[j, i])
                e = abs(s) / a_sum if a_sum > 0 else 0.0
                r24[t, i] = s
                er[t, i] = e
                if state[i] == 0.0 and e >= er_enter:
                    state[i] = 1.0
                elif state[i] == 1.0 and e < er_exit:
                    state[i] = 0.0
                trend[t, i] = state[i]
                sgn = 1.0 if s > 0 else (-1.0 if s < 0 else 0.0)
                mdrv[t, i] = state[i] * sgn
            if t + 1 < n_t:
                mu[t + 1, i] = 1e-4 * (s_fr[i] * fdrv[t, i] + s_ll[i] * ldrv[t, i] + s_rm[i] * mdrv[t, i])
    return r, mu, fz, fdrv, ldrv, r24, er, trend, mdrv, fund


@njit(cache=True)
def _cumsum_rows(start: np.ndarray, r: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    out = np.empty_like(r)
    for i in range(r.shape[1]):
        acc = start[i]
        for t in range(r.shape[0]):
            acc += r[t, i]
            out[t, i] = acc
    return out


@dataclass(frozen=True)
class _Path:
    """Full-calendar simulation (read-only arrays, hour-major, coins in cfg order)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    oi_usd: np.ndarray
    funding_ts: np.ndarray
    funding: np.ndarray
    obs: dict[str, np.ndarray]


@functools.lru_cache(maxsize=4)
def _simulate(cfg: SyntheticConfig) -> _Path:
    """Run the joint simulation over the whole calendar (cached per config)."""
    n = len(cfg.coins)
    n_t = (cfg.end_ms - cfg.origin_ms) // HOUR_MS
    v, act, shape = cfg.volatility, cfg.activity, cfg.edge_shape
    normals, unif, chi = _draws(cfg, n_t)
    pc = normals[:, _N_NORMAL_FIXED:].reshape(n_t, n, _NORMAL_PER_COIN)
    uc = unif.reshape(n_t, n, _UNIFORM_PER_COIN)

    sigma_h = np.array([c.annual_vol / math.sqrt(HOURS_PER_YEAR) for c in cfg.coins])
    # log-volatility: shared slow/mid/fast AR(1) parts + idiosyncratic part
    market = np.zeros(n_t)
    for col, (hl, sd) in enumerate(
        ((v.slow_half_life_h, v.slow_std), (v.mid_half_life_h, v.mid_std), (v.fast_half_life_h, v.fast_std))
    ):
        market += _ar1(np.ascontiguousarray(normals[:, col : col + 1]), _phi(hl), sd)[:, 0]
    idio = _ar1(np.ascontiguousarray(pc[:, :, 2]), _phi(v.idio_half_life_h), v.idio_std)
    var_x = v.slow_std**2 + v.mid_std**2 + v.fast_std**2 + v.idio_std**2
    season = _season(cfg, n_t)
    sig = sigma_h[None, :] * season[:, None] * np.exp(market[:, None] + idio - var_x)

    # standardised shocks: common Student-t mixer x correlated normals + idiosyncratic jumps
    low = np.array(_shock_cholesky(cfg))
    mix = np.sqrt((v.tail_dof - 2.0) / chi)
    corr_z = _correlate(low, np.ascontiguousarray(pc[:, :, 0]))
    w = np.array([1.0 - _jump_share(c) for c in cfg.coins])
    jp = np.array([c.jump_prob for c in cfg.coins])
    js = np.array([c.jump_scale for c in cfg.coins])
    jumps = np.where(uc[:, :, 0] < jp[None, :], js[None, :] * pc[:, :, 1], 0.0)
    diffusive = np.sqrt(w)[None, :] * mix[:, None] * corr_z
    shock = diffusive + jumps

    lead = cfg.coin_names.index(cfg.lead_coin)
    strengths = np.array(
        [[c.edge.funding_reversal, c.edge.lead_lag, c.edge.regime_momentum] for c in cfg.coins]
    )
    r, mu, fz, fdrv, ldrv, r24, er, trend, mdrv, fund = _recursion(
        sig,
        shock,
        np.ascontiguousarray(pc[:, :, 3]),
        np.array([c.funding_mean for c in cfg.coins]),
        np.array([c.funding_std for c in cfg.coins]),
        cfg.funding.persistence,
        cfg.funding.return_link,
        cfg.funding.zscore_window,
        shape.funding_z_enter,
        shape.funding_z_full,
        lead,
        float(sigma_h[lead]),
        shape.lead_clip,
        shape.trend_window_h,
        shape.trend_enter_er,
        shape.trend_exit_er,
        sigma_h,
        np.ascontiguousarray(strengths[:, 0]),
        np.ascontiguousarray(strengths[:, 1]),
        np.ascontiguousarray(strengths[:, 2]),
    )

    log_p0 = np.log(np.array([c.start_price for c in cfg.coins]))
    log_close = _cumsum_rows(log_p0, r)
    close = np.exp(log_close)
    open_ = np.empty_like(close)
    open_[0] = np.exp(log_p0)
    open_[1:] = close[:-1]
    # intrabar extremes: exact Brownian-bridge maximum/minimum given the bar's open->close move
    rs = np.array([c.range_scale for c in cfg.coins])
    bvar = (rs[None, :] * sig) ** 2 * (w[None, :] * mix[:, None] ** 2)
    up = 0.5 * (r + np.sqrt(r * r - 2.0 * bvar * np.log1p(-uc[:, :, 1])))
    dn = 0.5 * (r - np.sqrt(r * r - 2.0 * bvar * np.log1p(-uc[:, :, 2])))
    high = np.maximum(open_ * np.exp(up), np.maximum(open_, close))
    low_p = np.minimum(open_ * np.exp(dn), np.minimum(open_, close))

    # volume (base units): USD activity rises with the volatility state and the bar's |shock|
    vol_noise = _ar1(
        np.ascontiguousarray(pc[:, :, 4]), _phi(act.volume_noise_half_life_h), act.volume_noise_std
    )
    base_usd = np.array([c.volume_usd_per_hour for c in cfg.coins])
    abs_z = np.abs(r) / sig
    log_usd = (
        np.log(base_usd)[None, :]
        + act.volume_vol_elasticity * np.log(sig / sigma_h[None, :])
        + act.volume_abs_return_coef * (abs_z - math.sqrt(2.0 / math.pi))
        + vol_noise
        - 0.5 * act.volume_noise_std**2
    )
    typical = (high + low_p + close) / 3.0
    volume = np.exp(log_usd) / typical

    # open interest at time T_t (= close of bar t-1 = open of bar t): contracts x price, funding-linked
    oi_state = _ar1(np.ascontiguousarray(pc[:, :, 5]), _phi(act.oi_half_life_h), act.oi_noise_std)
    fmean = np.array([c.funding_mean for c in cfg.coins])
    fstd = np.array([c.funding_std for c in cfg.coins])
    settle_idx = np.arange(n_t) // FUNDING_EVERY_H  # latest settlement at or before T_t
    f_latest = fund[settle_idx]
    contracts = np.array([c.open_interest_usd / c.start_price for c in cfg.coins])[None, :] * np.exp(
        np.vstack([np.zeros((1, n)), oi_state[:-1]])
        - 0.5 * act.oi_noise_std**2
        + act.oi_funding_link * (f_latest - fmean) / fstd
    )
    oi_usd = contracts * open_

    ts = cfg.origin_ms + np.arange(n_t, dtype=np.int64) * HOUR_MS
    n_f = n_t // FUNDING_EVERY_H
    funding_ts = cfg.origin_ms + np.arange(n_f, dtype=np.int64) * (FUNDING_EVERY_H * HOUR_MS)
    obs = {
        "log_return": r,
        "sigma": sig,
        "funding_z": fz,
        "funding_driver": fdrv,
        "lead_driver": ldrv,
        "ret_24h": r24,
        "efficiency_ratio": er,
        "trend_state": trend,
        "momentum_driver": mdrv,
        # == mu[t + 1] (same IEEE operations as the recursion), also defined for the last bar
        "planted_drift_next": 1e-4
        * (strengths[:, 0] * fdrv + strengths[:, 1] * ldrv + strengths[:, 2] * mdrv),
    }
    arrays = [ts, open_, high, low_p, close, volume, oi_usd, funding_ts, fund[:n_f], *obs.values()]
    for a in arrays:
        a.setflags(write=False)
    return _Path(
        ts=ts,
        open=open_,
        high=high,
        low=low_p,
        close=close,
        volume=volume,
        oi_usd=oi_usd,
        funding_ts=funding_ts,
        funding=fund[:n_f],
        obs=obs,
    )


# ----------------------------------------------------------------------------------- public API
@dataclass(frozen=True)
class SyntheticSeries:
    """One coin's synthetic market data for a window.

    ohlcv: ts (int64 epoch ms, candle OPEN time, hourly), open, high, low, close, volume (float64).
    funding: ts (int64, settlements at 00/08/16 UTC), rate (fraction per 8 h; known at ts).
    open_interest: ts (int64, hourly), value (USD notional, known at ts), unit ('usd').
    """

    ohlcv: pd.DataFrame
    funding: pd.DataFrame
    open_interest: pd.DataFrame


def _check_coins(cfg: SyntheticConfig, coins: Sequence[str]) -> list[str]:
    """Requested coins as a list (a bare string is one coin); ConfigError naming unknown ones."""
    wanted = [coins] if isinstance(coins, str) else list(coins)
    names = cfg.coin_names
    unknown = [c for c in wanted if c not in names]
    if unknown:
        raise ConfigError(f"synthetic: unknown coin(s) {unknown}; configured coins: {list(names)}")
    return wanted


def _row_range(origin: int, step: int, count: int, start_ms: int, end_ms: int) -> tuple[int, int]:
    """Indices [a, b) of grid rows origin + k*step (k < count) with start_ms <= ts < end_ms."""
    a = max(0, -(-(int(start_ms) - origin) // step))
    b = min(count, max(0, -(-(int(end_ms) - origin) // step)))
    return min(a, b), b


@functools.lru_cache(maxsize=4)
def _full_frames(
    cfg: SyntheticConfig,
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]]:
    """Per coin (ohlcv, funding, open_interest, observables) over the whole calendar (cached).

    Callers get row slices; pandas copy-on-write keeps the cached frames immutable.
    """
    p = _simulate(cfg)
    out = {}
    for i, name in enumerate(cfg.coin_names):
        ohlcv = pd.DataFrame(
            {
                "ts": p.ts.copy(),
                "open": p.open[:, i].copy(),
                "high": p.high[:, i].copy(),
                "low": p.low[:, i].copy(),
                "close": p.close[:, i].copy(),
                "volume": p.volume[:, i].copy(),
            }
        )
        funding = pd.DataFrame({"ts": p.funding_ts.copy(), "rate": p.funding[:, i].copy()})
        oi = pd.DataFrame({"ts": p.ts.copy(), "value": p.oi_usd[:, i].copy()})
        oi["unit"] = "usd"
        obs = pd.DataFrame({"ts": p.ts.copy(), **{k: a[:, i].copy() for k, a in p.obs.items()}})
        out[name] = (ohlcv, funding, oi, obs)
    return out


def _slice(df: pd.DataFrame, a: int, b: int) -> pd.DataFrame:
    return df.iloc[a:b].reset_index(drop=True)


def generate(
    cfg: SyntheticConfig, coins: Sequence[str], start_ms: int, end_ms: int
) -> dict[str, SyntheticSeries]:
    """Synthetic OHLCV, funding and open interest for ``coins`` with ts in ``[start_ms, end_ms)``.

    The window is clipped to the calendar; rows are slices of the single cached full path, hence
    identical whatever window is requested. Unknown coin -> ConfigError listing the configured coins.
    Candle ts is the OPEN time; funding ts is the settlement time (rate known then); open-interest
    ts is the snapshot time (value uses the price at ts = close of the previous candle).
    """
    wanted = _check_coins(cfg, coins)
    frames = _full_frames(cfg)
    n_h = len(frames[cfg.coin_names[0]][0])
    a, b = _row_range(cfg.origin_ms, HOUR_MS, n_h, start_ms, end_ms)
    fa, fb = _row_range(cfg.origin_ms, FUNDING_EVERY_H * HOUR_MS, n_h // FUNDING_EVERY_H, start_ms, end_ms)
    out: dict[str, SyntheticSeries] = {}
    for name in wanted:
        ohlcv, funding, oi, _ = frames[name]
        out[name] = SyntheticSeries(
            ohlcv=_slice(ohlcv, a, b), funding=_slice(funding, fa, fb), open_interest=_slice(oi, a, b)
        )
    return out


def observables(
    cfg: SyntheticConfig, coins: Sequence[str], start_ms: int, end_ms: int
) -> dict[str, pd.DataFrame]:
    """Hourly driver variables of the planted edge, per coin, ts = bar OPEN time in ``[start_ms, end_ms)``.

    Every column except ``sigma`` and ``planted_drift_next`` is computable from data known at the
    CLOSE of the row's bar (ts + 1 h) and drives the drift of the NEXT bar:
    log_return (this bar), funding_z / funding_driver (from settlements <= ts + 1 h), lead_driver
    (lead coin's return of this bar / its hourly vol, clipped), ret_24h / efficiency_ratio (last 24
    bars incl. this one), trend_state (0 chop / 1 trend), momentum_driver. Ground truth (latent):
    sigma (this bar's conditional vol) and planted_drift_next (expected log return of the next bar,
    = 1e-4 * sum(strength * driver)).
    """
    wanted = _check_coins(cfg, coins)
    frames = _full_frames(cfg)
    n_h = len(frames[cfg.coin_names[0]][3])
    a, b = _row_range(cfg.origin_ms, HOUR_MS, n_h, start_ms, end_ms)
    return {name: _slice(frames[name][3], a, b) for name in wanted}


def planted_truth(cfg: SyntheticConfig) -> dict[str, dict[str, float]]:
    """Per coin: mechanism -> configured strength (bps of hourly log return per unit driver; 0 = noise).

    Descriptions of each mechanism are in :data:`MECHANISMS` (see also :func:`describe_planted_truth`).
    """
    return {c.name: c.edge.as_dict() for c in cfg.coins}


def describe_planted_truth(cfg: SyntheticConfig) -> str:
    """Human-readable summary of the planted edge: one line per mechanism and per coin."""
    lines = [f"{k}: {d}" for k, d in MECHANISMS.items()]
    for coin, m in planted_truth(cfg).items():
        edged = {k: v for k, v in m.items() if v}
        lines.append(f"{coin}: " + (", ".join(f"{k}={v:g} bps" for k, v in edged.items()) or "pure noise"))
    return "\n".join(lines)
