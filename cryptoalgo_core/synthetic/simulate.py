"""The synthetic market simulation: one cached joint path per config, sliced into any requested window.

Model and planted edge: :mod:`cryptoalgo_core.synthetic`. The hot loops are numba kernels in :mod:`.kernels`;
the parameters come from :mod:`.config`. Pure (numpy/pandas/numba), deterministic given the config.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.synthetic import kernels as K
from cryptoalgo_core.synthetic.config import MECHANISMS, SyntheticConfig, jump_share, shock_cholesky
from cryptoalgo_core.timeutil import HOUR_MS

__all__ = [
    "FUNDING_EVERY_H",
    "HOURS_PER_YEAR",
    "SyntheticSeries",
    "describe_planted_truth",
    "generate",
    "observables",
    "planted_truth",
]

HOURS_PER_YEAR = 8760
FUNDING_EVERY_H = 8
_N_NORMAL_FIXED = 4  # slow, mid, fast log-vol innovations + spare column (keeps layout stable)
_NORMAL_PER_COIN = 7  # z, jump size, idio vol, funding, volume, oi, spare
_UNIFORM_PER_COIN = 3  # jump occurrence, high, low


def _phi(half_life_h: float) -> float:
    return 0.5 ** (1.0 / half_life_h)


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
        market += K.ar1(np.ascontiguousarray(normals[:, col : col + 1]), _phi(hl), sd)[:, 0]
    idio = K.ar1(np.ascontiguousarray(pc[:, :, 2]), _phi(v.idio_half_life_h), v.idio_std)
    var_x = v.slow_std**2 + v.mid_std**2 + v.fast_std**2 + v.idio_std**2
    season = _season(cfg, n_t)
    sig = sigma_h[None, :] * season[:, None] * np.exp(market[:, None] + idio - var_x)

    # standardised shocks: common Student-t mixer x correlated normals + idiosyncratic jumps
    low = np.array(shock_cholesky(cfg))
    mix = np.sqrt((v.tail_dof - 2.0) / chi)
    corr_z = K.correlate(low, np.ascontiguousarray(pc[:, :, 0]))
    w = np.array([1.0 - jump_share(c) for c in cfg.coins])
    jp = np.array([c.jump_prob for c in cfg.coins])
    js = np.array([c.jump_scale for c in cfg.coins])
    jumps = np.where(uc[:, :, 0] < jp[None, :], js[None, :] * pc[:, :, 1], 0.0)
    diffusive = np.sqrt(w)[None, :] * mix[:, None] * corr_z
    shock = diffusive + jumps
    # Martingale compensation (docs/SYNTHETIC.md): given the bar's variance state (vol sig, mixer mix), the
    # diffusive part is normal with variance w mix^2 sig^2 and the jump part a Bernoulli(p) x N(0, (js sig)^2);
    # log E[exp(sig * shock)] = w mix^2 sig^2 / 2 + log(1 - p + p exp((js sig)^2 / 2)). Subtracting it makes a
    # coin with zero planted edge a price martingale: zero expected gross return for a long or a short.
    comp = (0.5 * w[None, :] * (mix[:, None] * sig) ** 2
            + np.log1p(jp[None, :] * np.expm1(0.5 * (js[None, :] * sig) ** 2)))

    lead = cfg.coin_names.index(cfg.lead_coin)
    strengths = np.array(
        [[c.edge.funding_reversal, c.edge.lead_lag, c.edge.regime_momentum, c.edge.hidden_interaction]
         for c in cfg.coins]
    )
    # volume noise (deterministic given the draws) and the parts of log USD volume known before each bar's
    # return: the recursion adds the |r| / sigma term to get the log USD volume that gates hidden_interaction
    vol_noise = K.ar1(
        np.ascontiguousarray(pc[:, :, 4]), _phi(act.volume_noise_half_life_h), act.volume_noise_std
    )
    vol_pre = act.volume_vol_elasticity * np.log(sig / sigma_h[None, :]) + vol_noise
    r, mu, fz, fdrv, ldrv, r24, er, trend, mdrv, hz, hgate, hdrv, fund = K.recursion(
        sig,
        shock,
        comp,
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
        np.ascontiguousarray(vol_pre),
        act.volume_abs_return_coef,
        shape.hidden_window_h,
        shape.hidden_z_scale,
        shape.hidden_volume_fast_h,
        shape.hidden_volume_slow_h,
        shape.hidden_quiet_gate,
        np.ascontiguousarray(strengths[:, 3]),
    )

    log_p0 = np.log(np.array([c.start_price for c in cfg.coins]))
    log_close = K.cumsum_rows(log_p0, r)
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
    oi_state = K.ar1(np.ascontiguousarray(pc[:, :, 5]), _phi(act.oi_half_life_h), act.oi_noise_std)
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
    # == mu[t + 1] (same IEEE operations as the recursion), also defined for the last bar; the hidden term is
    # added only for coins where it is planted (as in the recursion), so its absence changes no bit
    drift = strengths[:, 0] * fdrv + strengths[:, 1] * ldrv + strengths[:, 2] * mdrv
    for i in np.flatnonzero(strengths[:, 3]):
        drift[:, i] = drift[:, i] + strengths[i, 3] * hdrv[:, i]
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
        "hidden_z": hz,
        "volume_gate": hgate,
        "hidden_driver": hdrv,
        "planted_drift_next": 1e-4 * drift,
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
    bars incl. this one), trend_state (0 chop / 1 trend), momentum_driver, hidden_z (sum of the last
    ``hidden_window_h`` log returns / their root sum of squares; NaN during warm-up), volume_gate (1 or
    ``hidden_quiet_gate``: fast vs slow mean log USD volume, NaN during warm-up), hidden_driver (soft sign of
    hidden_z / hidden_z_scale times volume_gate; 0 during warm-up). Ground truth (latent):
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
