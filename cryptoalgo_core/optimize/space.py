"""config/presets.yaml: optimization presets, the search space and how a trial's parameters become a CoinSpec.

A preset (:class:`Preset`) fixes the research cut (``holdout_days``, ``n_cv_folds``, ``min_train_days``), the
study (``seed``, startup trials, ``top_k`` holdout candidates), the fold objective's shaping
(:class:`ObjectiveSettings`), the holdout gate (:class:`HoldoutGateSettings`) and the search space
(:class:`ParamRange` per parameter of :data:`PARAMS`). Tiers scale the trial budget and may tighten objective,
gate and space per coin (:func:`load_preset` resolves them for one coin).

Errors are :class:`~cryptoalgo_core.errors.ConfigError` naming the file, preset and key: an unknown preset,
an unknown parameter, an empty range (``low > high``, no choices, a choice outside the parameter's domain).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptoalgo_core.config.io import build_dataclass, config_dir, deep_merge, read_yaml
from cryptoalgo_core.config.profile import TREND_STATES
from cryptoalgo_core.errors import ConfigError

__all__ = [
    "PARAMS",
    "HoldoutGateSettings",
    "ObjectiveSettings",
    "ParamRange",
    "Preset",
    "apply_params",
    "load_preset",
    "preset_names",
    "profile_fragment",
]

# short name -> (section of the coin spec, field, kind): kind int | float | states
PARAMS: dict[str, tuple[str, str, str]] = {
    "label_forward_hours": ("label", "forward_hours", "int"),
    "label_vol_target": ("label", "vol_target", "float"),
    "n_estimators": ("model", "n_estimators", "int"),
    "max_depth": ("model", "max_depth", "int"),
    "learning_rate": ("model", "learning_rate", "float"),
    "min_child_weight": ("model", "min_child_weight", "float"),
    "reg_lambda": ("model", "reg_lambda", "float"),
    "long_threshold": ("entry", "long_threshold", "float"),
    "short_threshold": ("entry", "short_threshold", "float"),
    "min_spread": ("entry", "min_spread", "float"),
    "vol_mult_sl": ("exits", "vol_mult_sl", "float"),
    "vol_mult_tp": ("exits", "vol_mult_tp", "float"),
    "max_hold_hours": ("exits", "max_hold_hours", "int"),
    "min_vol_24h": ("filters", "min_vol_24h", "float"),
    "max_vol_24h": ("filters", "max_vol_24h", "float"),
    "min_momentum_magnitude": ("filters", "min_momentum_magnitude", "float"),
    "trend_states": ("filters", "trend_states", "states"),
}
#: parameters whose value changes the out-of-sample predictions (the prediction cache key)
MODEL_SECTIONS = ("label", "model")
_DOMAIN: dict[str, tuple[float, float]] = {  # closed bounds each parameter's values must lie in
    "label_forward_hours": (1, 24 * 14), "label_vol_target": (0.05, 10), "n_estimators": (1, 5000),
    "max_depth": (1, 12), "learning_rate": (1e-4, 1), "min_child_weight": (0, 1e4), "reg_lambda": (0, 1e4),
    "long_threshold": (0, 1), "short_threshold": (0, 1), "min_spread": (0, 1), "vol_mult_sl": (0.05, 20),
    "vol_mult_tp": (0.05, 20), "max_hold_hours": (1, 24 * 14), "min_vol_24h": (0, 1), "max_vol_24h": (0, 1),
    "min_momentum_magnitude": (0, 100),
}


@dataclass(frozen=True)
class ParamRange:
    """``{low, high[, log, step]}`` (a number range; an int parameter gets an int range) or ``{choices}``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def categorical(self) -> bool:
        return self.choices is not None

    def values_hint(self) -> str:
        return f"choices {list(self.choices)}" if self.choices is not None else f"[{self.low}, {self.high}]"


@dataclass(frozen=True)
class ObjectiveSettings:
    """Fold objective and shaping (see :mod:`cryptoalgo_core.optimize.objective` for the formula)."""

    dispersion_penalty: float = 0.5
    positive_fold_bonus_bps: float = 4.0
    min_trades_per_fold: int = 15
    few_trades_penalty_bps: float = 20.0
    stop_loss_limit: float = 0.55
    stop_loss_penalty_bps: float = 15.0
    fee_edge_limit: float = 0.6
    fee_edge_penalty_bps: float = 10.0
    churn_limit_per_day: float = 2.0
    churn_penalty_bps: float = 5.0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{f.name} must be finite and >= 0, got {v!r}")
        if not 0 <= self.stop_loss_limit < 1:
            raise ValueError(f"stop_loss_limit must be in [0, 1), got {self.stop_loss_limit}")
        if self.churn_limit_per_day <= 0:
            raise ValueError("churn_limit_per_day must be > 0")


@dataclass(frozen=True)
class HoldoutGateSettings:
    """The holdout gate: return > 0, Sharpe > 0, trades >= min_trades, stop-loss share < max_stop_loss_share and
    fee/edge ratio below the coin's baseline profile's on the same holdout."""

    min_trades: int = 10
    max_stop_loss_share: float = 0.70

    def __post_init__(self) -> None:
        if self.min_trades < 1:
            raise ValueError(f"min_trades must be >= 1, got {self.min_trades}")
        if not 0 < self.max_stop_loss_share <= 1:
            raise ValueError(f"max_stop_loss_share must be in (0, 1], got {self.max_stop_loss_share}")


@dataclass(frozen=True)
class _Tier:
    budget_share: float = 1.0
    objective: dict[str, Any] = field(default_factory=dict)
    holdout_gate: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _PresetFile:
    description: str = ""
    holdout_days: int = 180
    n_cv_folds: int = 5
    min_train_days: int = 120
    top_k: int = 5
    seed: int = 0
    startup_trials: int = 20
    prune_startup_trials: int = 10
    objective: dict[str, Any] = field(default_factory=dict)
    holdout_gate: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    tiers: dict[int, _Tier] = field(default_factory=dict)
    coin_tiers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    """One preset resolved for one coin (tier overrides applied)."""

    name: str
    coin: str
    tier: int
    budget_share: float
    description: str
    holdout_days: int
    n_cv_folds: int
    min_train_days: int
    top_k: int
    seed: int
    startup_trials: int
    prune_startup_trials: int
    objective: ObjectiveSettings
    holdout_gate: HoldoutGateSettings
    space: dict[str, ParamRange]

    def budget(self, trials: int) -> int:
        """This coin's share of a launch's ``--trials`` (at least 1)."""
        return max(1, int(round(trials * self.budget_share)))

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["space"] = {k: {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in dataclasses.asdict(v).items()
                          if vv is not None and vv is not False} for k, v in self.space.items()}
        return d


def _path() -> Path:
    return config_dir() / "presets.yaml"


def preset_names() -> list[str]:
    data = read_yaml(_path()).get("presets") or {}
    return sorted(data)


def load_preset(name: str, coin: str, **overrides: Any) -> Preset:
    """Preset ``name`` resolved for ``coin`` (its tier's overrides on top); ``overrides`` replace top-level
    values (``holdout_days``, ``n_cv_folds``: the launch's flags). ConfigError naming what is wrong."""
    path = _path()
    raw = read_yaml(path)
    presets = raw.get("presets")
    if not isinstance(presets, dict) or not presets:
        raise ConfigError(f"{path}: no 'presets' mapping")
    if name not in presets:
        raise ConfigError(f"{path}: unknown preset {name!r}; known: {sorted(presets)}")
    where = f"{path}: presets.{name}"
    pf = build_dataclass(_PresetFile, presets[name], where)
    tier_no = pf.coin_tiers.get(coin, 2)
    tier = pf.tiers.get(tier_no, _Tier())
    if not 0 < tier.budget_share <= 1:
        raise ConfigError(f"{where}.tiers.{tier_no}.budget_share: must be in (0, 1], got {tier.budget_share}")
    objective = build_dataclass(ObjectiveSettings, deep_merge(pf.objective, tier.objective), f"{where}.objective")
    gate = build_dataclass(HoldoutGateSettings, deep_merge(pf.holdout_gate, tier.holdout_gate), f"{where}.holdout_gate")
    space = _space(deep_merge(pf.space, tier.space), f"{where}.space")
    values = {f.name: getattr(pf, f.name) for f in dataclasses.fields(pf)
              if f.name in ("description", "holdout_days", "n_cv_folds", "min_train_days", "top_k", "seed",
                            "startup_trials", "prune_startup_trials")}
    for k, v in overrides.items():
        if v is not None:
            values[k] = v
    if values["n_cv_folds"] < 2:
        raise ConfigError(f"{where}.n_cv_folds: need >= 2 folds, got {values['n_cv_folds']}")
    if values["holdout_days"] < 1 or values["min_train_days"] < 1 or values["top_k"] < 1:
        raise ConfigError(f"{where}: holdout_days, min_train_days and top_k must be >= 1")
    return Preset(name, coin, tier_no, tier.budget_share, objective=objective, holdout_gate=gate, space=space,
                  **values)


def _space(data: dict[str, Any], where: str) -> dict[str, ParamRange]:
    if not data:
        raise ConfigError(f"{where}: the search space is empty")
    unknown = sorted(set(data) - set(PARAMS))
    if unknown:
        raise ConfigError(f"{where}: unknown parameter(s) {unknown}; known: {sorted(PARAMS)}")
    out = {}
    for name, spec in data.items():
        r = build_dataclass(ParamRange, spec, f"{where}.{name}")
        _check_range(name, r, f"{where}.{name}")
        out[name] = r
    lo, hi = out.get("min_vol_24h"), out.get("max_vol_24h")
    if lo is not None and hi is not None and _max(lo) > _min(hi):
        raise ConfigError(f"{where}: min_vol_24h {lo.values_hint()} overlaps max_vol_24h {hi.values_hint()} "
                          "(every pair must satisfy min <= max)")
    return out


def _min(r: ParamRange) -> float:
    return float(min(r.choices)) if r.choices is not None else float(r.low)  # type: ignore[arg-type]


def _max(r: ParamRange) -> float:
    return float(max(r.choices)) if r.choices is not None else float(r.high)  # type: ignore[arg-type]


def _check_range(name: str, r: ParamRange, where: str) -> None:
    kind = PARAMS[name][2]
    if r.choices is not None:
        if r.low is not None or r.high is not None:
            raise ConfigError(f"{where}: give either choices or low/high, not both")
        if len(r.choices) == 0:
            raise ConfigError(f"{where}: empty range (no choices)")
        for c in r.choices:
            _check_value(name, kind, c, where)
        return
    if kind == "states":
        raise ConfigError(f"{where}: trend_states takes choices (e.g. ['down,chop,up', 'chop,up'])")
    if r.low is None or r.high is None:
        raise ConfigError(f"{where}: needs low and high (or choices)")
    if r.low > r.high:
        raise ConfigError(f"{where}: empty range, low {r.low} > high {r.high}")
    if kind == "int" and (r.low != int(r.low) or r.high != int(r.high)):
        raise ConfigError(f"{where}: an integer parameter needs integer low/high")
    if r.step is not None and (r.step <= 0 or r.log):
        raise ConfigError(f"{where}: step must be > 0 and cannot combine with log")
    if kind == "int" and r.step is not None and r.step != int(r.step):
        raise ConfigError(f"{where}: an integer parameter needs an integer step, got {r.step}")
    if r.log and r.low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0")
    for v in (r.low, r.high):
        _check_value(name, kind, v, where)


def _check_value(name: str, kind: str, v: Any, where: str) -> None:
    if kind == "states":
        states = _states(v, where)
        bad = [s for s in states if s not in TREND_STATES]
        if bad or not states:
            raise ConfigError(f"{where}: {v!r} is not a comma-separated subset of {list(TREND_STATES)}")
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{where}: {v!r} is not a number")
    if kind == "int" and v != int(v):
        raise ConfigError(f"{where}: {v!r} is not an integer")
    lo, hi = _DOMAIN[name]
    if not lo <= v <= hi:
        raise ConfigError(f"{where}: {v!r} is outside the parameter's domain [{lo}, {hi}]")


def _states(v: Any, where: str = "trend_states") -> tuple[str, ...]:
    if not isinstance(v, str):
        raise ConfigError(f"{where}: {v!r} is not a comma-separated string of trend states")
    return tuple(s.strip() for s in v.split(",") if s.strip())


def suggest(trial: Any, space: dict[str, ParamRange]) -> dict[str, Any]:
    """The trial's parameters (an Optuna trial: categorical, int or float suggestions, in the space's order)."""
    out: dict[str, Any] = {}
    for name, r in space.items():
        kind = PARAMS[name][2]
        if r.choices is not None:
            out[name] = trial.suggest_categorical(name, list(r.choices))
        elif kind == "int":
            out[name] = trial.suggest_int(name, int(r.low), int(r.high), step=int(r.step or 1), log=r.log)  # type: ignore[arg-type]
        else:
            out[name] = trial.suggest_float(name, float(r.low), float(r.high), step=r.step, log=r.log)  # type: ignore[arg-type]
    return out


def _value(name: str, v: Any) -> Any:
    kind = PARAMS[name][2]
    if kind == "states":
        return _states(v)
    return int(v) if kind == "int" else float(v)


def _known(params: dict[str, Any]) -> None:
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise ConfigError(f"unknown parameter(s) {unknown}; known: {sorted(PARAMS)}")


def apply_params(spec: Any, params: dict[str, Any]) -> Any:
    """``spec`` (a resolved CoinSpec) with ``params`` applied. A label horizon change moves a max hold that
    followed the label (coins.yaml null) along with it unless ``max_hold_hours`` is a parameter too."""
    _known(params)
    by: dict[str, dict[str, Any]] = {}
    for name, v in params.items():
        section, fld, _ = PARAMS[name]
        by.setdefault(section, {})[fld] = _value(name, v)
    label = dataclasses.replace(spec.label, **by.get("label", {}))
    prof = spec.profile
    exits = dict(by.get("exits", {}))
    if "max_hold_hours" not in exits and prof.exits.max_hold_hours == spec.label.forward_hours:
        exits["max_hold_hours"] = label.forward_hours
    prof = dataclasses.replace(
        prof,
        model=dataclasses.replace(prof.model, **by.get("model", {})),
        entry=dataclasses.replace(prof.entry, **by.get("entry", {})),
        filters=dataclasses.replace(prof.filters, **by.get("filters", {})),
        exits=dataclasses.replace(prof.exits, **exits),
    )
    return dataclasses.replace(spec, label=label, profile=prof)


def profile_fragment(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as a coins.yaml coin fragment (``label`` plus profile sections), e.g. to paste under
    ``coins.ETH``: ``{"label": {"forward_hours": 12}, "exits": {"vol_mult_sl": 1.4}, ...}``."""
    _known(params)
    out: dict[str, dict[str, Any]] = {}
    for name, v in params.items():
        section, fld, _ = PARAMS[name]
        val = _value(name, v)
        out.setdefault(section, {})[fld] = list(val) if isinstance(val, tuple) else val
    return out
