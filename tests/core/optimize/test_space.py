"""config/presets.yaml and the search space: shipped presets per coin and tier, named errors, parameters ->
CoinSpec (apply_params), -> coins.yaml fragment (profile_fragment) and Optuna suggestions (suggest)."""

from __future__ import annotations

import copy
import dataclasses
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from cryptoalgo_core.config import load_coins
from cryptoalgo_core.config.io import deep_merge
from cryptoalgo_core.errors import ConfigError
from cryptoalgo_core.optimize.space import (
    PARAMS,
    ParamRange,
    apply_params,
    load_preset,
    preset_names,
    profile_fragment,
    suggest,
)

REPO_CONFIG = Path(__file__).resolve().parents[3] / "config"
COINS = ("BTC", "ETH", "SOL", "XRP", "DOGE")


@pytest.fixture
def repo_config(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped config/ (whatever the caller's environment points at)."""
    monkeypatch.delenv("CRYPTOALGO_CONFIG_DIR", raising=False)
    return REPO_CONFIG


@pytest.fixture
def tmp_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the shipped config/ in tmp_path, selected through CRYPTOALGO_CONFIG_DIR."""
    d = tmp_path / "config"
    shutil.copytree(REPO_CONFIG, d)
    monkeypatch.setenv("CRYPTOALGO_CONFIG_DIR", str(d))
    return d


# a small valid preset; each error case below breaks exactly one thing in a copy of it
BASE: dict[str, Any] = {
    "holdout_days": 30,
    "n_cv_folds": 3,
    "min_train_days": 60,
    "objective": {"min_trades_per_fold": 5},
    "holdout_gate": {"min_trades": 3},
    "space": {
        "label_forward_hours": {"choices": [8, 12]},
        "long_threshold": {"low": 0.5, "high": 0.6},
        "max_hold_hours": {"low": 6, "high": 24, "step": 6},
        "min_vol_24h": {"low": 0.0, "high": 0.005},
        "max_vol_24h": {"low": 0.01, "high": 0.05},
        "trend_states": {"choices": ["down,chop,up", "chop,up"]},
    },
}


def write_presets(cfg: Path, **presets: dict[str, Any]) -> None:
    (cfg / "presets.yaml").write_text(yaml.safe_dump({"presets": presets}, sort_keys=False))


# ---------------------------------------------------------------- shipped presets


def test_shipped_presets_load_for_every_coin(repo_config: Path) -> None:
    coins = load_coins()
    assert sorted(coins) == sorted(COINS)
    assert preset_names() == ["demo", "quick", "robust180"]
    for name in ("robust180", "quick", "demo"):
        for coin in coins:
            p = load_preset(name, coin)
            assert (p.name, p.coin) == (name, coin)
            assert p.space and set(p.space) <= set(PARAMS)
            assert p.n_cv_folds >= 2 and p.holdout_days >= 1


def test_robust180_cut_and_tier_budgets(repo_config: Path) -> None:
    for coin in COINS:
        p = load_preset("robust180", coin)
        assert (p.holdout_days, p.n_cv_folds, p.min_train_days, p.top_k) == (180, 5, 120, 5)
    budgets = {coin: load_preset("robust180", coin).budget(900) for coin in COINS}
    assert budgets == {"ETH": 900, "SOL": 900, "BTC": 540, "XRP": 540, "DOGE": 360}
    tiers = {coin: load_preset("robust180", coin).tier for coin in COINS}
    assert tiers == {"ETH": 1, "SOL": 1, "BTC": 2, "XRP": 2, "DOGE": 3}
    assert load_preset("robust180", "DOGE").budget(1) == 1  # never below one trial
    # quick: every tier gets the whole budget; an unlisted coin is tier 2
    assert {coin: load_preset("quick", coin).budget(900) for coin in COINS} == dict.fromkeys(COINS, 900)
    q = load_preset("quick", "ETH")
    assert (q.holdout_days, q.n_cv_folds, q.tier) == (30, 3, 2)


def test_robust180_doge_tier_is_stricter(repo_config: Path) -> None:
    eth, doge = load_preset("robust180", "ETH"), load_preset("robust180", "DOGE")
    assert eth.objective.min_trades_per_fold == 15 and doge.objective.min_trades_per_fold == 25
    assert (eth.objective.fee_edge_limit, doge.objective.fee_edge_limit) == (0.6, 0.45)
    assert (eth.objective.stop_loss_limit, doge.objective.stop_loss_limit) == (0.55, 0.5)
    # keys the tier does not name keep the preset's values
    assert doge.objective.dispersion_penalty == eth.objective.dispersion_penalty == 0.5
    assert doge.objective.few_trades_penalty_bps == 20.0
    assert (eth.holdout_gate.min_trades, doge.holdout_gate.min_trades) == (10, 15)
    assert (eth.holdout_gate.max_stop_loss_share, doge.holdout_gate.max_stop_loss_share) == (0.7, 0.6)
    assert eth.space["long_threshold"] == ParamRange(low=0.50, high=0.66)
    assert doge.space["long_threshold"] == ParamRange(low=0.54, high=0.66)
    assert (eth.space["min_spread"].low, doge.space["min_spread"].low) == (0.0, 0.02)
    assert doge.space["min_spread"].high == 0.08
    assert doge.space["label_forward_hours"] == eth.space["label_forward_hours"] == ParamRange(choices=(8, 12, 24))


def test_overrides_replace_top_level_values(repo_config: Path) -> None:
    p = load_preset("robust180", "ETH", holdout_days=90, n_cv_folds=None)
    assert (p.holdout_days, p.n_cv_folds) == (90, 5)
    with pytest.raises(ConfigError, match=r"presets\.robust180\.n_cv_folds: need >= 2 folds, got 1"):
        load_preset("robust180", "ETH", n_cv_folds=1)


def test_as_dict_keeps_every_bound(repo_config: Path) -> None:
    """The preset recorded with a study must describe the space exactly (a 0.0 bound is a bound)."""
    p = load_preset("robust180", "ETH")
    d = p.as_dict()
    assert d["space"]["min_spread"] == {"low": 0.0, "high": 0.08}
    assert d["space"]["min_vol_24h"] == {"low": 0.0, "high": 0.006}
    assert d["space"]["max_hold_hours"] == {"low": 4, "high": 48, "step": 4}
    assert d["space"]["trend_states"] == {"choices": ["down,chop,up", "chop,up", "down,chop", "up"]}
    for name, r in p.space.items():
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d["space"][name].items()}
        assert ParamRange(**kw) == r, name
    assert d["holdout_days"] == 180 and d["objective"]["min_trades_per_fold"] == 15


# ---------------------------------------------------------------- named errors


def test_base_preset_is_valid(tmp_config: Path) -> None:
    write_presets(tmp_config, base=BASE)
    p = load_preset("base", "ETH")
    assert (p.holdout_days, p.n_cv_folds, p.objective.min_trades_per_fold) == (30, 3, 5)
    assert p.space["trend_states"].choices == ("down,chop,up", "chop,up")


def test_unknown_preset_lists_the_known_ones(tmp_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_presets(tmp_config, zeta=BASE, alpha=BASE)
    with pytest.raises(ConfigError, match=r"presets\.yaml: unknown preset 'nope'; known: \['alpha', 'zeta'\]"):
        load_preset("nope", "ETH")
    monkeypatch.delenv("CRYPTOALGO_CONFIG_DIR")
    with pytest.raises(ConfigError, match=r"unknown preset 'robust'; known: \['demo', 'quick', 'robust180'\]"):
        load_preset("robust", "ETH")


def _space(**params: Any) -> Callable[[dict[str, Any]], None]:
    def edit(p: dict[str, Any]) -> None:
        p["space"].update(params)
    return edit


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(p: dict[str, Any]) -> None:
        p[key] = value
    return edit


WHERE = r"presets\.yaml: presets\.base"
BAD: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown_param": (_space(max_leverage={"low": 1, "high": 2}),
                      WHERE + r"\.space: unknown parameter\(s\) \['max_leverage'\]; known: \["),
    "empty_range": (_space(long_threshold={"low": 0.7, "high": 0.6}),
                    WHERE + r"\.space\.long_threshold: empty range, low 0\.7 > high 0\.6"),
    "empty_choices": (_space(label_forward_hours={"choices": []}),
                      WHERE + r"\.space\.label_forward_hours: empty range \(no choices\)"),
    "choice_outside_domain": (_space(long_threshold={"choices": [0.55, 1.5]}),
                              WHERE + r"\.space\.long_threshold: 1\.5 is outside the parameter's domain \[0, 1\]"),
    "bound_outside_domain": (_space(max_depth={"low": 2, "high": 40}),
                             WHERE + r"\.space\.max_depth: 40\.0 is outside the parameter's domain \[1, 12\]"),
    "bad_trend_state": (_space(trend_states={"choices": ["chop,up", "chop,sideways"]}),
                        WHERE + r"\.space\.trend_states: 'chop,sideways' is not a comma-separated subset of "
                                r"\['down', 'chop', 'up'\]"),
    "trend_states_range": (_space(trend_states={"low": 0, "high": 1}), r"trend_states takes choices"),
    "vol_ranges_overlap": (_space(min_vol_24h={"low": 0.0, "high": 0.02}, max_vol_24h={"low": 0.01, "high": 0.05}),
                           WHERE + r"\.space: min_vol_24h \[0\.0, 0\.02\] overlaps max_vol_24h \[0\.01, 0\.05\]"),
    "non_integer_int_bounds": (_space(max_hold_hours={"low": 4.5, "high": 24}),
                               r"max_hold_hours: an integer parameter needs integer low/high"),
    "non_integer_int_step": (_space(max_hold_hours={"low": 4, "high": 24, "step": 2.5}),
                             r"max_hold_hours: an integer parameter needs an integer step, got 2\.5"),
    "step_with_log": (_space(learning_rate={"low": 0.01, "high": 0.1, "log": True, "step": 0.01}),
                      r"learning_rate: step must be > 0 and cannot combine with log"),
    "choices_and_range": (_space(long_threshold={"low": 0.5, "high": 0.6, "choices": [0.55]}),
                          r"long_threshold: give either choices or low/high, not both"),
    "one_fold": (_set("n_cv_folds", 1), WHERE + r"\.n_cv_folds: need >= 2 folds, got 1"),
    "unknown_objective_key": (_set("objective", {"min_trades": 5}),
                              WHERE + r"\.objective: unknown key\(s\) \['min_trades'\]; allowed: \["),
    "unknown_top_level_key": (_set("holdout", 30), WHERE + r": unknown key\(s\) \['holdout'\]"),
    "bad_gate_value": (_set("holdout_gate", {"max_stop_loss_share": 1.5}),
                       WHERE + r"\.holdout_gate: max_stop_loss_share must be in \(0, 1\]"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_named_config_errors(case: str, tmp_config: Path) -> None:
    edit, pattern = BAD[case]
    preset = copy.deepcopy(BASE)
    edit(preset)
    write_presets(tmp_config, base=preset)
    with pytest.raises(ConfigError, match=pattern):
        load_preset("base", "ETH")


def test_tier_space_is_checked_after_merging(tmp_config: Path) -> None:
    """A tier override that empties a range is named under the preset's space."""
    preset = copy.deepcopy(BASE)
    preset["tiers"] = {3: {"budget_share": 0.5, "space": {"long_threshold": {"low": 0.65}}}}
    preset["coin_tiers"] = {"DOGE": 3}
    write_presets(tmp_config, base=preset)
    assert load_preset("base", "ETH").space["long_threshold"] == ParamRange(low=0.5, high=0.6)
    with pytest.raises(ConfigError, match=WHERE + r"\.space\.long_threshold: empty range, low 0\.65 > high 0\.6"):
        load_preset("base", "DOGE")


# ---------------------------------------------------------------- apply_params / profile_fragment

PARAMS_ETH = {"label_forward_hours": 24, "vol_mult_sl": 1.7, "trend_states": "chop,up", "max_depth": 3}


def test_apply_params_sets_each_section(repo_config: Path) -> None:
    spec = load_coins()["ETH"]
    # ETH's coins.yaml max_hold_hours is null: it follows the label horizon
    assert spec.profile.exits.max_hold_hours == spec.label.forward_hours == 12
    out = apply_params(spec, PARAMS_ETH)
    assert out.label.forward_hours == 24
    assert out.profile.exits.vol_mult_sl == 1.7
    assert out.profile.filters.trend_states == ("chop", "up")
    assert out.profile.model.max_depth == 3
    assert out.profile.exits.max_hold_hours == 24  # moved along with the label
    # everything else is untouched, and the input spec is not modified
    assert out.label.vol_target == spec.label.vol_target
    assert out.profile.exits.vol_mult_tp == spec.profile.exits.vol_mult_tp
    assert out.profile.model.n_estimators == spec.profile.model.n_estimators
    assert out.profile.entry == spec.profile.entry and out.profile.costs == spec.profile.costs
    assert spec.label.forward_hours == 12 and spec.profile.model.max_depth == 2
    # an explicit max_hold_hours wins over the label
    both = apply_params(spec, {**PARAMS_ETH, "max_hold_hours": 36})
    assert (both.label.forward_hours, both.profile.exits.max_hold_hours) == (24, 36)
    # int parameters become ints, float ones floats
    typed = apply_params(spec, {"max_hold_hours": 20.0, "long_threshold": 1})
    assert typed.profile.exits.max_hold_hours == 20 and isinstance(typed.profile.exits.max_hold_hours, int)
    assert isinstance(typed.profile.entry.long_threshold, float)


def test_apply_params_keeps_a_max_hold_that_does_not_follow_the_label(repo_config: Path) -> None:
    spec = load_coins()["ETH"]
    fixed = dataclasses.replace(spec, profile=dataclasses.replace(
        spec.profile, exits=dataclasses.replace(spec.profile.exits, max_hold_hours=6)))
    out = apply_params(fixed, {"label_forward_hours": 24})
    assert (out.label.forward_hours, out.profile.exits.max_hold_hours) == (24, 6)


def test_apply_params_unknown_parameter(repo_config: Path) -> None:
    spec = load_coins()["ETH"]
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['max_leverage'\]; known: \["):
        apply_params(spec, {"max_depth": 3, "max_leverage": 2})


def _load_eth_with(tmp_config: Path, fragment: dict[str, Any]) -> Any:
    raw = yaml.safe_load((REPO_CONFIG / "coins.yaml").read_text())
    raw["coins"]["ETH"] = deep_merge(raw["coins"]["ETH"], fragment)
    (tmp_config / "coins.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_coins()["ETH"]


@pytest.mark.parametrize("extra", [{}, {"max_hold_hours": 36}], ids=["hold_follows_label", "explicit_hold"])
def test_profile_fragment_is_a_valid_coins_yaml_fragment(extra: dict[str, Any], tmp_config: Path) -> None:
    params = {**PARAMS_ETH, "long_threshold": 0.6, "min_vol_24h": 0.001, "label_vol_target": 1.5, **extra}
    frag = profile_fragment(params)
    expected = {
        "label": {"forward_hours": 24, "vol_target": 1.5},
        "exits": {"vol_mult_sl": 1.7, **({"max_hold_hours": 36} if extra else {})},
        "filters": {"trend_states": ["chop", "up"], "min_vol_24h": 0.001},
        "model": {"max_depth": 3},
        "entry": {"long_threshold": 0.6},
    }
    assert frag == expected
    original = load_coins(REPO_CONFIG / "coins.yaml")["ETH"]
    loaded = _load_eth_with(tmp_config, frag)
    applied = apply_params(original, params)
    for get in (lambda s: s.label.forward_hours, lambda s: s.label.vol_target,
                lambda s: s.profile.exits.vol_mult_sl, lambda s: s.profile.exits.max_hold_hours,
                lambda s: s.profile.filters.trend_states, lambda s: s.profile.filters.min_vol_24h,
                lambda s: s.profile.model.max_depth, lambda s: s.profile.entry.long_threshold):
        assert get(loaded) == get(applied)
    assert loaded.profile.exits.max_hold_hours == (36 if extra else 24)
    assert loaded == applied  # and nothing else differs


# ---------------------------------------------------------------- suggest


ROBUST_VALUES: dict[str, Any] = {
    "label_forward_hours": 24, "label_vol_target": 1.5, "max_depth": 3, "min_child_weight": 50.0,
    "long_threshold": 0.58, "min_spread": 0.04, "vol_mult_sl": 1.25, "vol_mult_tp": 2.0, "max_hold_hours": 16,
    "min_vol_24h": 0.002, "max_vol_24h": 0.03, "min_momentum_magnitude": 0.5, "trend_states": "chop,up",
}


def test_suggest_with_a_fixed_trial(repo_config: Path) -> None:
    space = load_preset("robust180", "ETH").space
    assert set(ROBUST_VALUES) == set(space)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # FixedTrial warns on a value outside the distribution
        got = suggest(optuna.trial.FixedTrial(ROBUST_VALUES), space)
    assert got == ROBUST_VALUES
    assert list(got) == list(space)  # the space's order
    assert isinstance(got["max_hold_hours"], int)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        self.calls.append(("categorical", name, choices))
        return choices[0]

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        self.calls.append(("int", name, low, high, step, log))
        return low

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None,
                      log: bool = False) -> float:
        self.calls.append(("float", name, low, high, step, log))
        return low


def test_suggest_passes_the_ranges(tmp_config: Path) -> None:
    preset = copy.deepcopy(BASE)
    preset["space"]["learning_rate"] = {"low": 0.01, "high": 0.1, "log": True}
    preset["space"]["min_spread"] = {"low": 0.0, "high": 0.06, "step": 0.02}
    write_presets(tmp_config, base=preset)
    trial = _Recorder()
    out = suggest(trial, load_preset("base", "ETH").space)
    calls = {c[1]: c for c in trial.calls}
    assert calls["label_forward_hours"] == ("categorical", "label_forward_hours", [8, 12])
    assert calls["long_threshold"] == ("float", "long_threshold", 0.5, 0.6, None, False)
    assert calls["max_hold_hours"] == ("int", "max_hold_hours", 6, 24, 6, False)
    assert calls["learning_rate"] == ("float", "learning_rate", 0.01, 0.1, None, True)
    assert calls["min_spread"] == ("float", "min_spread", 0.0, 0.06, 0.02, False)
    assert calls["trend_states"] == ("categorical", "trend_states", ["down,chop,up", "chop,up"])
    assert out["max_hold_hours"] == 6 and out["trend_states"] == "down,chop,up"
