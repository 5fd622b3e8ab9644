"""CoinProfile validation: bad values fail with an error naming the coin, the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptoalgo_core.config import load_coins
from cryptoalgo_core.config.costs import load_venues, tier_for_volume
from cryptoalgo_core.config.profile import CoinProfile, resolve_profile
from cryptoalgo_core.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
BASE = "coins:\n  ETH:\n    symbols: {coinbase: ETH-USD}\n"


def _load(tmp_path: Path, extra: str):
    p = tmp_path / "coins.yaml"
    p.write_text(BASE + extra)
    (tmp_path / "costs.yaml").write_text((REPO / "config" / "costs.yaml").read_text())
    return load_coins(p)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    exits: {vol_mult_sl: -1.0}\n", "coins.ETH.exits.vol_mult_sl: must be > 0, got -1.0"),
        ("    exits: {vol_mult_tp: 0}\n", "coins.ETH.exits.vol_mult_tp: must be > 0"),
        ("    exits: {max_hold_hours: 2.5}\n", "coins.ETH.exits.max_hold_hours: expected an integer"),
        ("    entry: {long_threshold: 1.2}\n", "coins.ETH.entry.long_threshold: 1.2 is outside [0, 1]"),
        ("    entry: {mode: magic}\n", "coins.ETH.entry.mode"),
        ("    tier: SUPER\n", "coins.ETH.tier: 'SUPER' is not one of"),
        ("    costs: {venue: kraken}\n", "coins.ETH.costs.venue: 'kraken' not in costs.yaml venues"),
        ("    costs: {venue: coinbase_advanced, fee_tier: vip0, funding: false}\n", "coins.ETH.costs.fee_tier: 'vip0'"),
        ("    costs: {venue: coinbase_advanced, fee_tier: intro_1}\n", "coins.ETH.costs.funding: funding applies to perp venues"),
        ("    costs: {venue: coinbase_advanced, fee_tier: intro_1, funding: false}\n    entry: {long_only: false}\n",
         "coins.ETH.entry.long_only: shorting needs a perp venue"),
        ("    filters: {trend_states: [sideways]}\n", "coins.ETH.filters.trend_states"),
        ("    filters: {min_vol_24h: 0.02, max_vol_24h: 0.01}\n", "need 0 <= min_vol_24h <= max_vol_24h"),
        ("    model: {max_depth: 0}\n", "coins.ETH.model.max_depth: must be in 1..12"),
        ("    walk_forward: {scheme: anchored}\n", "coins.ETH.walk_forward.scheme"),
        ("    sizing: {position_scale: 2}\n", "coins.ETH.sizing.position_scale: must be in (0, 1]"),
        ("    exits: {stop: 1}\n", "coins.ETH.exits: unknown key(s) ['stop']"),
        ("    exits: {max_hold_hours: 0}\n", "coins.ETH.exits.max_hold_hours: must be >= 1, got 0"),
        ("    exits: {tp_through_bps: -1}\n", "coins.ETH.exits.tp_through_bps: must be in [0, 10000), got -1.0"),
        ("    exits: {tp_through_bps: .inf}\n", "coins.ETH.exits.tp_through_bps: expected a finite number"),
        ("    costs: {slippage_vol_mult: -0.1}\n", "coins.ETH.costs.slippage_vol_mult: must be in [0, 10], got -0.1"),
        ("    costs: {slippage_vol_mult: 11}\n", "coins.ETH.costs.slippage_vol_mult: must be in [0, 10]"),
        ("    costs: {slippage_vol_mult: true}\n", "coins.ETH.costs.slippage_vol_mult: expected a number"),
        ("    sizing: {max_leverage: 0}\n", "coins.ETH.sizing.max_leverage: must be in (0, 100], got 0.0"),
        ("    sizing: {max_leverage: -2}\n", "coins.ETH.sizing.max_leverage: must be in (0, 100]"),
        ("    costs: {venue: coinbase_advanced, fee_tier: intro_1, funding: false}\n    sizing: {max_leverage: 2}\n",
         "coins.ETH.sizing.max_leverage: 2.0 > 1 needs a perp venue; coinbase_advanced is spot"),
    ],
)
def test_bad_profile_values_are_named(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        _load(tmp_path, extra)
    assert message in str(exc.value)


def test_unknown_coin_in_train_is_named() -> None:
    from click.testing import CliRunner

    from cryptoalgo_assets.cli import main

    res = CliRunner().invoke(main, ["train", "--coin", "LUNA"])
    assert res.exit_code == 2 and "unknown coin(s) ['LUNA']" in res.output


def test_costs_resolve_from_venue_tier(tmp_path: Path) -> None:
    coins = _load(tmp_path, "    costs: {venue: coinbase_advanced, fee_tier: advanced_3, funding: false, entry_order: maker}\n")
    c = coins["ETH"].profile.costs
    assert (c.maker_bps, c.taker_bps, c.venue_kind) == (7.5, 20.0, "spot")
    assert c.fee_entry == pytest.approx(7.5e-4) and c.fee_exit_other == pytest.approx(20e-4)
    venues = load_venues(REPO / "config" / "costs.yaml")
    assert tier_for_volume(venues["coinbase_advanced"], 500) == "intro_1"
    assert tier_for_volume(venues["coinbase_advanced"], 250_000) == "advanced_3"
    assert tier_for_volume(venues["coinbase_advanced"], 1e12) == "advanced_8"


def test_max_hold_follows_the_label_unless_set(tmp_path: Path) -> None:
    coins = _load(tmp_path, "    label: {forward_hours: 24}\n")
    assert coins["ETH"].profile.exits.max_hold_hours == 24  # null (the default) = label.forward_hours
    assert coins["ETH"].profile.exits.hold_hours == 24
    coins = _load(tmp_path, "    label: {forward_hours: 24}\n    exits: {max_hold_hours: null}\n")
    assert coins["ETH"].profile.exits.max_hold_hours == 24
    coins = _load(tmp_path, "    label: {forward_hours: 24}\n    exits: {max_hold_hours: 6}\n")
    assert coins["ETH"].profile.exits.max_hold_hours == 6  # an explicit value wins
    coins = _load(tmp_path, "")
    assert coins["ETH"].profile.exits.max_hold_hours == 12  # the default label horizon
    shipped = load_coins()  # config/coins.yaml: BTC labels look 24 h ahead, XRP 8 h
    assert all(c.profile.exits.max_hold_hours == c.label.forward_hours for c in shipped.values())
    assert shipped["BTC"].profile.exits.max_hold_hours == 24 and shipped["XRP"].profile.exits.max_hold_hours == 8


def test_unresolved_max_hold_is_named() -> None:
    venues = load_venues(REPO / "config" / "costs.yaml")
    with pytest.raises(ConfigError, match="x.exits.max_hold_hours: null follows label.forward_hours"):
        resolve_profile(CoinProfile(), "x", venues)
    with pytest.raises(ValueError, match="exits.max_hold_hours is unresolved"):
        _ = CoinProfile().exits.hold_hours
    assert resolve_profile(CoinProfile(), "x", venues, label_hours=8).exits.hold_hours == 8


def test_new_execution_defaults(tmp_path: Path) -> None:
    p = _load(tmp_path, "")["ETH"].profile
    assert p.exits.tp_through_bps == 2.0 and p.exits.tp_through == pytest.approx(2e-4)
    assert p.costs.slippage_vol_mult == 0.03 and p.costs.slippage_bps == 2.0
    assert p.sizing.max_leverage == 1.0 and p.max_position == 1.0
    p = _load(tmp_path, "    sizing: {max_leverage: 3}\n    exits: {tp_through_bps: 0}\n    costs: {slippage_vol_mult: 0}\n")["ETH"].profile
    assert (p.max_position, p.exits.tp_through, p.costs.slippage_vol_mult) == (3.0, 0.0, 0.0)
    spot = _load(tmp_path, "    costs: {venue: coinbase_advanced, fee_tier: intro_1, funding: false}\n"
                           "    sizing: {max_leverage: 0.5}\n")["ETH"].profile
    assert spot.max_position == 0.5


def test_shipped_profiles_resolve_to_the_documented_values() -> None:
    """config/coins.yaml + costs.yaml as shipped: every coin on Binance USD-M VIP 0 (2 / 5 bps), its hold horizon
    following its label horizon (BTC 24 h, XRP 8 h, the rest 12 h), perp leverage capped at 1x."""
    coins = load_coins()
    holds = {c: s.profile.exits.max_hold_hours for c, s in coins.items()}
    assert holds == {c: s.label.forward_hours for c, s in coins.items()}
    assert (holds["BTC"], holds["XRP"], holds["ETH"]) == (24, 8, 12)
    for spec in coins.values():
        c = spec.profile.costs
        assert (c.venue, c.maker_bps, c.taker_bps, c.venue_kind) == ("binance_usdm", 2.0, 5.0, "perp")
        assert spec.profile.max_position == 1.0
