#!/usr/bin/env python
"""Detection curve of the research loop on the synthetic market: does it find what is planted, and only that?

    .venv/bin/python benchmarks/bench_detection.py [--seeds 12] [--strengths 0,0.5,1,2] [--years 3] [--workers 2]
                                                   [--no-refit]

For each planted strength multiplier k (ETH's and SOL's planted edges x k; BTC, XRP, DOGE stay pure noise) and
each seed, the whole loop runs in memory (cryptoalgo_core.research.evaluate_coin: features, labels, purged
walk-forward with calibration, cost-aware backtest), every coin with ONE AND THE SAME profile (ETH's: the
coins.yaml defaults), the last 90 days held out. Printed (never asserted):

* the null distribution of the directional AUC: every coin-run at k = 0 plus the noise coins at k > 0
  (mean, sd, 1st/99th percentile) and the band 0.5 +- z_0.995 * sd that holds for 99 % of null runs — the
  band the acceptance test (tests/core/test_known_answer.py) uses;
* per k: the planted coins' AUC (mean, sd), the detection rate (share of planted coin-runs above the band),
  the noise coins' false-positive rate (outside the band), and the net edge after costs (mean, sd over runs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

COINS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]
Z995 = 2.5758


def one_run(args: tuple[int, float, float, int, bool]) -> list[dict]:
    """Every coin of one (seed, k) market, with the same profile (the coins.yaml defaults)."""
    seed, k, years, test_days, refit = args
    from dataclasses import replace

    from cryptoalgo_core.config import load_coins
    from cryptoalgo_core.research import evaluate_market, scaled_synthetic_config

    spec = load_coins()["ETH"]
    if not refit:
        spec = replace(spec, profile=replace(spec.profile, walk_forward=replace(spec.profile.walk_forward,
                                                                                  refit_full=False)))
    rows = evaluate_market(scaled_synthetic_config(seed, k, years), spec, COINS, test_days=test_days)
    return [{**r, "k": k, "planted": r["planted"] and k > 0, "refit": refit} for r in rows]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--seeds", type=int, default=12)
    p.add_argument("--first-seed", type=int, default=1000)
    p.add_argument("--strengths", default="0,0.5,1,2")
    p.add_argument("--years", type=float, default=3.0)
    p.add_argument("--test-days", type=int, default=90, help="walk-forward retrain cadence (default 90)")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--no-refit", action="store_true", help="walk_forward.refit_full = false (the pre-issue-8 model)")
    a = p.parse_args(argv)
    import pandas as pd

    ks = [float(x) for x in a.strengths.split(",")]
    jobs = [(a.first_seed + s, k, a.years, a.test_days, not a.no_refit) for k in ks for s in range(a.seeds)]
    t0 = time.perf_counter()
    rows: list[dict] = []
    with ProcessPoolExecutor(max_workers=a.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for i, res in enumerate(pool.map(one_run, jobs), 1):
            rows += res
            print(f"  {i}/{len(jobs)} runs ({time.perf_counter() - t0:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    null = df[~df["planted"]]["auc"].dropna()
    sd = float(null.std(ddof=1))
    lo, hi = 0.5 - Z995 * sd, 0.5 + Z995 * sd
    print()
    print(f"detection benchmark: {a.seeds} seeds x strengths {ks} x {len(COINS)} coins, {a.years:g} years, "
          f"one profile (coins.yaml defaults), walk-forward every {a.test_days} d, 90-day holdout; "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"null AUC (k = 0 all coins + noise coins at k > 0, n = {len(null)}): mean {null.mean():.4f} sd {sd:.4f} "
          f"p1 {null.quantile(0.01):.4f} p99 {null.quantile(0.99):.4f}")
    print(f"99 % null band: [{lo:.4f}, {hi:.4f}]  (0.5 +- {Z995} x sd); "
          f"share of null runs outside: {float(((null < lo) | (null > hi)).mean()):.3f}")
    print()
    print(f"{'k':>4} {'planted AUC':>18} {'detected':>9} {'noise outside':>14} {'planted net bps':>22} "
          f"{'noise net bps':>20} {'planted trades':>15}")
    for k in ks:
        d = df[df["k"] == k]
        pl, no = d[d["planted"]], d[~d["planted"]]
        det = float((pl["auc"] > hi).mean()) if len(pl) else float("nan")
        fp = float(((no["auc"] < lo) | (no["auc"] > hi)).mean())
        print(f"{k:4g} {_ms(pl['auc']):>18} {det:9.2f} {fp:14.3f} {_ms(pl['net_bps']):>22} {_ms(no['net_bps']):>20} "
              f"{pl['trades'].mean() if len(pl) else float('nan'):15.0f}")
    out = REPO / "bench_out"
    out.mkdir(exist_ok=True)
    name = "detection_norefit.csv" if a.no_refit else "detection.csv"
    df.to_csv(out / name, index=False)
    print(f"\nper-run rows: {out / name}")
    return 0


def _ms(s) -> str:  # noqa: ANN001
    if len(s) == 0:
        return "-"
    return f"{s.mean():.4f} +- {s.std(ddof=1):.4f}" if len(s) > 1 else f"{s.mean():.4f}"


if __name__ == "__main__":
    sys.exit(main())
