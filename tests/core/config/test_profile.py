"""CoinProfile validation: bad values fail with an error naming the coin, the field and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from cryptoalgo_core.config import load_coins
from cryptoalgo_core.config.costs import load_venues, tier_for_volume
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


def test_default_profiles_load() -> None:
    coins = load_coins()
    assert all(c.profile.tier in ("RESEARCH", "PAPER", "PILOT", "FULL", "REJECT") for c in coins.values())
    assert coins["ETH"].profile.costs.taker_bps > 0
