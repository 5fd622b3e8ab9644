"""Walk-forward training + backtest for one coin x N days (issue target: 365 days <= 10 s).

    .venv/bin/python benchmarks/bench_train.py [--coin ETH] [--days 365] [--repeats 3]

Times the pure core path the `walk_forward_model` and `backtest` assets run (features and labels are built
outside the timing), and prints per-stage seconds, folds, model fits and peak memory. Numbers, never asserts.
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

from cryptoalgo_core import synthetic as syn
from cryptoalgo_core.backtest.report import backtest_coin
from cryptoalgo_core.config import load_coins
from cryptoalgo_core.features.build import MarketPanel, build_features, feature_names
from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin
from cryptoalgo_core.model.walkforward import walk_forward
from cryptoalgo_core.timeutil import DAY_MS

COINS = ["BTC", "ETH", "SOL", "XRP", "DOGE"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--coin", default="ETH")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    cfg = syn.load_synthetic_config()
    _, end = syn.calendar_bounds(cfg)
    g = syn.generate(cfg, COINS, end - a.days * DAY_MS, end)
    panel = MarketPanel({c: g[c].ohlcv for c in COINS}, {c: g[c].funding for c in COINS},
                        {c: g[c].open_interest[["ts", "value"]] for c in COINS})
    spec = load_coins()[a.coin]
    feats = build_features(panel, a.coin)
    ds = build_ml_dataset(feats, labels_for_coin(panel.ohlcv[a.coin], spec.label))
    names = feature_names(COINS, a.coin)
    prof = spec.profile
    # warm-up: numba kernels (cache load or compile) and xgboost import
    t0 = time.perf_counter()
    r = walk_forward(ds, names, prof.walk_forward, prof.model)
    backtest_coin(a.coin, r.predictions, feats, panel.ohlcv[a.coin], panel.funding[a.coin], prof, r.holdout_start)
    first = time.perf_counter() - t0
    wf_t, bt_t = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        r = walk_forward(ds, names, prof.walk_forward, prof.model)
        t1 = time.perf_counter()
        bt = backtest_coin(a.coin, r.predictions, feats, panel.ohlcv[a.coin], panel.funding[a.coin], prof, r.holdout_start)
        t2 = time.perf_counter()
        wf_t.append(t1 - t0)
        bt_t.append(t2 - t1)
    tracemalloc.start()
    walk_forward(ds, names, prof.walk_forward, prof.model)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    folds = int((r.folds["skipped"] == "").sum())
    wf_med, bt_med = sorted(wf_t)[len(wf_t) // 2], sorted(bt_t)[len(bt_t) // 2]
    print(f"coin {a.coin}, {a.days} days synthetic: dataset {len(ds)} rows x {len(names)} features, "
          f"{folds} folds x 2 models (direction, touch), {len(r.predictions)} OOS rows, {len(bt.trades)} trades")
    print(f"  first call (imports, numba cache load/compile)  {first:7.2f} s")
    print(f"  walk-forward (median of {a.repeats})                {wf_med:7.2f} s   ({wf_med / max(folds, 1) / 2:.3f} s per model fit)")
    print(f"  backtest + diagnostics (median)               {bt_med:7.3f} s")
    print(f"  total                                         {wf_med + bt_med:7.2f} s   target <= 10 s: "
          f"{'met' if wf_med + bt_med <= 10 else 'MISSED'}")
    print(f"  tracemalloc peak (walk-forward) {peak:.1f} MiB; ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
