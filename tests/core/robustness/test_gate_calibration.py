"""The small, CI-sized version of benchmarks/gate_calibration.py: the whole decision loop (study -> one holdout
read -> robustness -> tier) on one fixed synthetic market with a strong planted edge (2x the default strengths:
oracle net Sharpe of SOL ~10, ETH ~7.6 annualised) and pure-noise coins.

Claims and their error rates come from the benchmark over many seeds (README, "Gates certified on ground
truth"): noise coins reach PILOT/FULL in a small share of runs, and strongly planted coins reach it in most.
On this one fixed market the loop is deterministic (seeded studies, models and Monte Carlo), so the test
cannot flake: it fails only when the loop or its gates change what they decide here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SEED = 7001
YEARS = 3.0
TRIALS = 150


@pytest.fixture(scope="module")
def market() -> Any:
    from cryptoalgo_core import synthetic as syn
    from cryptoalgo_core.research import scaled_synthetic_config, synthetic_panel

    cfg = scaled_synthetic_config(SEED, 2.0, YEARS)
    start, end = syn.calendar_bounds(cfg)
    return cfg, synthetic_panel(cfg, list(cfg.coin_names), start, end)


def _decide(market: Any, coin: str, tmp_path: Path) -> dict[str, Any]:
    from cryptoalgo_core.config import load_coins
    from cryptoalgo_core.config.gates import load_gates
    from cryptoalgo_core.optimize.space import load_preset
    from cryptoalgo_core.robustness.loop import decide_coin

    _cfg, panel = market
    return decide_coin(panel, coin, load_coins()[coin], load_preset("demo", coin), TRIALS, load_gates().robustness,
                       tmp_path)


@pytest.mark.parametrize("coin", ["BTC", "XRP"])
def test_noise_coins_are_not_pilot_ready(market: Any, coin: str, tmp_path: Path) -> None:
    from cryptoalgo_core import synthetic as syn

    assert sum(syn.planted_truth(market[0])[coin].values()) == 0
    d = _decide(market, coin, tmp_path)
    assert d["tier"] not in ("PILOT", "FULL"), (d["tier"], d["score"], d["failed"])
    assert not d["passed"]
    assert d["failed"]  # and it says why


def test_a_strong_planted_edge_is_pilot_ready(market: Any, tmp_path: Path) -> None:
    d = _decide(market, "SOL", tmp_path)
    assert d["tier"] in ("PILOT", "FULL"), (d["tier"], d["score"], d["failed"])
    assert d["stats"]["dsr"]["value"] >= 0.9 and d["holdout"]["total_return"] > 0
