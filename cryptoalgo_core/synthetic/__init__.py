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
    mu[t+1,i]  = 1e-4 * ( S_fr[i] * F[t,i] + S_ll[i] * L[t,i] + S_rm[i] * M[t,i] + S_hi[i] * H[t,i] )

``z_t`` iid N(0, I); ``L`` the Cholesky factor of the (compensated) correlation matrix; ``s_t`` a
common inverse-chi-square variance mixer (multivariate Student-t, ``tail_dof``); ``J`` rare
idiosyncratic Gaussian jumps; ``w_i = 1 - jump_prob * jump_scale^2``. The planted drift ``mu[t+1]``
is a linear function of four drivers that are all OBSERVABLE at the close of bar ``t``:

* ``F`` funding_reversal: ``-sign(z) * clip((|z| - z_enter) / (z_full - z_enter), 0, 1)`` where ``z``
  is the rolling z-score of the last settled funding rates (settled at or before the close of ``t``);
* ``L`` lead_lag: ``clip(r[t, lead] / sigma_lead_hourly, -lead_clip, lead_clip)`` - the lead coin's
  (BTC's) return of bar ``t`` in units of its configured hourly volatility;
* ``M`` regime_momentum: ``trend[t] * sign(sum r[t-23..t])`` where ``trend`` is the two-state
  trend/chop regime, a hysteresis state machine on the 24 h efficiency ratio of past closes;
* ``H`` hidden_interaction (strength 0 by default; built so that no feature equals it):
  ``a(z) * g`` with ``z = sum r[t-35..t] / sqrt(sum r[t-35..t]^2)``, the soft sign
  ``a(z) = (z / 1.5) / sqrt(1 + (z / 1.5)^2)`` and the volume gate ``g`` = 1 when the mean log USD volume of
  bars ``t-5..t`` exceeds that of bars ``t-95..t``, else 0.3 (windows and constants under ``edge_shape``).

Strengths are in basis points of log return per hour per unit driver. Noise coins have all strengths
0, so their returns are a martingale difference sequence w.r.t. every observable.

Modules: :mod:`.config` (config/synthetic.yaml -> :class:`SyntheticConfig`; the only I/O is
:func:`load_synthetic_config`), :mod:`.simulate` (the cached simulation, :func:`generate`, :func:`observables`,
the planted truth), :mod:`.kernels` (the numba loops) and :mod:`.oracle` (the planted net Sharpe: what a
trader knowing the mechanism earns after costs). Pure (numpy/pandas/numba) apart from reading the YAML.
"""

from cryptoalgo_core.synthetic import simulate as _simulation
from cryptoalgo_core.synthetic.config import (
    MECHANISMS,
    ActivityConfig,
    CoinParams,
    EdgeShapeConfig,
    EdgeStrengths,
    FundingConfig,
    SyntheticConfig,
    VolatilityConfig,
    calendar_bounds,
    load_synthetic_config,
    parse_synthetic_config,
)
from cryptoalgo_core.synthetic.oracle import oracle_performance, planted_net_sharpe
from cryptoalgo_core.synthetic.simulate import (
    FUNDING_EVERY_H,
    HOURS_PER_YEAR,
    SyntheticSeries,
    describe_planted_truth,
    generate,
    observables,
    planted_truth,
)

# the in-process caches, cleared by tests and benchmarks that measure a cold start
_simulate = _simulation._simulate
_full_frames = _simulation._full_frames

__all__ = [
    "FUNDING_EVERY_H",
    "HOURS_PER_YEAR",
    "MECHANISMS",
    "ActivityConfig",
    "CoinParams",
    "EdgeShapeConfig",
    "EdgeStrengths",
    "FundingConfig",
    "SyntheticConfig",
    "SyntheticSeries",
    "VolatilityConfig",
    "calendar_bounds",
    "describe_planted_truth",
    "generate",
    "load_synthetic_config",
    "observables",
    "oracle_performance",
    "parse_synthetic_config",
    "planted_net_sharpe",
    "planted_truth",
]
