"""Known answer, over several seeds, with stated error rates: the research loop finds the edge planted in ETH and
SOL and nothing in the pure-noise coins (BTC, XRP, DOGE). Every coin runs with ONE AND THE SAME profile (the
coins.yaml defaults), so noise and edged coins differ only in what the market planted.

Each seed is a fresh 3-year synthetic market (cryptoalgo_core.research.evaluate_coin: features, labels, purged
walk-forward with calibration and refit, cost-aware backtest; the last 90 days held out; retrained every 90 days
to keep the test near a minute on two cores).

The null comes from `benchmarks/bench_detection.py` (12 seeds x strengths 0/0.5/1/2, seeds 1000-1011 — not the
seeds used here): its 168 coin-runs without edge had directional AUC mean 0.4954, sd 0.0148 (1 %/99 %: 0.458 /
0.520; 2.4 % of them outside 0.5 +- 2.576 sd). At the default planted strength its planted coin-runs had AUC
0.5615 +- 0.0202 and net edge -0.2 +- 8.1 bps per trade (noise: -17.0 +- 11.3). The claims below are about the
seeds in SEEDS, independent of that estimate; each test states its false-failure probability under that null
and effect, ~2 % for the whole file.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

NULL_MEAN, NULL_SD = 0.4954, 0.0148  # bench_detection.py, 168 null coin-runs (see the module docstring)
BAND = (0.5 - 2.576 * NULL_SD, 0.5 + 2.576 * NULL_SD)  # one null run: outside with probability 2.4 % (measured)
Z99 = 2.576
SEEDS = (2000, 2001)
PLANTED, NOISE = ("ETH", "SOL"), ("BTC", "XRP", "DOGE")


def _seed(seed: int) -> list[dict]:
    from cryptoalgo_core.config import load_coins
    from cryptoalgo_core.research import evaluate_market, scaled_synthetic_config

    return evaluate_market(scaled_synthetic_config(seed, 1.0, 3.0), load_coins()["ETH"], test_days=90)


@pytest.fixture(scope="module")
def runs() -> list[dict]:
    # spawn, not fork: earlier tests in this process started xgboost's OpenMP threads, and a forked child of a
    # process with a live OpenMP pool deadlocks in its first parallel region
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        rows = [r for res in pool.map(_seed, SEEDS) for r in res]
    print({(r["seed"], r["coin"]): (round(r["auc"], 4), round(r["net_bps"], 1)) for r in rows})
    return rows


def test_noise_coins_look_like_the_null(runs: list[dict]) -> None:
    """6 noise coin-runs. Their mean lies within NULL_MEAN +- 2.576 sd / sqrt(6) (fails with probability 1 % under
    the null), and at most one run lies outside the single-run band (>= 2 of 6 at 2.4 % each: 0.8 %)."""
    noise = np.asarray([r["auc"] for r in runs if r["coin"] in NOISE])
    assert noise.size == 3 * len(SEEDS)
    assert abs(noise.mean() - NULL_MEAN) < Z99 * NULL_SD / np.sqrt(noise.size), noise
    assert sum(not BAND[0] <= a <= BAND[1] for a in noise) <= 1, (BAND, noise)


def test_planted_coins_are_detected(runs: list[dict]) -> None:
    """4 planted coin-runs. Their mean AUC exceeds the null's 99 % upper bound for a mean of 4, NULL_MEAN + 2.576 sd
    / 2 = 0.514 (at the benchmark's 0.5615 +- 0.0202 the margin is ~4.6 standard errors: failure < 1e-5), and in
    every seed the planted coins' mean beats the noise coins' mean (a ~0.065 gap against a ~0.015 spread)."""
    planted = np.asarray([r["auc"] for r in runs if r["coin"] in PLANTED])
    assert planted.mean() > NULL_MEAN + Z99 * NULL_SD / np.sqrt(planted.size), planted
    for seed in SEEDS:
        p = np.mean([r["auc"] for r in runs if r["seed"] == seed and r["coin"] in PLANTED])
        n = np.mean([r["auc"] for r in runs if r["seed"] == seed and r["coin"] in NOISE])
        assert p > n, (seed, p, n)


def test_planted_coins_keep_more_edge_after_costs_than_noise(runs: list[dict]) -> None:
    """The planted edge survives costs better than noise does: mean net edge of the planted runs > the noise runs'
    (a 16.7 bps gap with a ~6 bps standard error: fails ~0.3 %); trading noise loses money to costs (mean net < 0:
    -17 bps with a ~4.6 bps standard error)."""
    planted = np.mean([r["net_bps"] for r in runs if r["coin"] in PLANTED])
    noise = np.mean([r["net_bps"] for r in runs if r["coin"] in NOISE])
    assert planted > noise and noise < 0, (planted, noise)
