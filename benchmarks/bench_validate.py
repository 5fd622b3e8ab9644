#!/usr/bin/env python
"""Robustness validation benchmark: prints numbers and ratios, never asserts a timing.

    .venv/bin/python benchmarks/bench_validate.py [--days 1095] [--trials 150] [--coins BTC,ETH,SOL,XRP,DOGE]
                                                  [--skip-cli] [--keep]

1. Monte Carlo over trades, in process: 10,000 paths x 1,000 trades, bootstrap and reshuffle (after one warm-up
   call that compiles the numba kernels), against a plain numpy reference of the same bootstrap statistics on
   the same machine in the same process (ratio). Issue target: < 1 s.
2. ``cryptoalgo validate --all --mode full`` through the CLI on a fresh DAGSTER_HOME after a ``cryptoalgo
   launch`` with the ``demo`` preset (the studies are not timed): wall time of validate (robustness for every
   coin, then portfolio and checklist), per-coin step time from the runs, and of ``--mode screen``. Issue target:
   < 60 s for 5 coins, excluding the studies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def numpy_bootstrap(r: np.ndarray, paths: int, seed: int) -> float:
    """Reference: p95 of the max drawdown of iid-bootstrap paths, vectorised numpy (chunks of 1,000 paths)."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, paths, 1000):
        n = min(1000, paths - start)
        eq = np.cumprod(1.0 + r[rng.integers(0, r.size, (n, r.size))], axis=1)
        peak = np.maximum.accumulate(np.maximum(eq, 1.0), axis=1)
        out.append((1.0 - eq / peak).max(axis=1))
    return float(np.quantile(np.concatenate(out), 0.95))


def monte_carlo_speed() -> None:
    from cryptoalgo_core.robustness.montecarlo import monte_carlo

    r = np.random.default_rng(1).normal(0.0005, 0.01, 1000)
    monte_carlo(r[:50], n_paths=100, method="bootstrap")  # compile
    monte_carlo(r[:50], n_paths=100, method="reshuffle")
    print("1. Monte Carlo over trades: 10,000 paths x 1,000 trades (target < 1 s)")
    t0 = time.perf_counter()
    ref = numpy_bootstrap(r, 10_000, 3)
    t_ref = time.perf_counter() - t0
    for method in ("bootstrap", "reshuffle"):
        best = min(_timed(lambda m=method: monte_carlo(r, n_paths=10_000, method=m, seed=3)) for _ in range(3))
        print(f"   {method:<9} {best * 1e3:7.1f} ms  (numpy reference bootstrap {t_ref * 1e3:.0f} ms: "
              f"{t_ref / best:.1f}x)")
    res = monte_carlo(r, n_paths=10_000, method="bootstrap", seed=3)
    print(f"   p95 max drawdown {res['max_drawdown']['p95']:.4f} (numpy reference, other random stream: {ref:.4f})")


def _timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def validate_speed(coins: str, days: int, trials: int, keep: bool) -> None:
    from _cli import fresh_env, run

    tmp, env, cli = fresh_env("bench_validate_")
    data = Path(env["TRADER_DATA_DIR"])
    try:
        _t, ing = run([*cli, "ingest", "--coins", coins, "--source", "synthetic", "--backfill-days", str(days),
                       "--no-progress"], env)
        if ing.returncode:
            raise SystemExit(f"ingest failed: {ing.stderr[-1500:]}")
        t_l, lr = run([*cli, "launch", "--coins", coins, "--trials", str(trials), "--preset", "demo", "--cohort",
                       "bench", "--no-progress"], env)
        if lr.returncode not in (0, 3):
            raise SystemExit(f"launch failed ({lr.returncode}): {lr.stdout[-1500:]} {lr.stderr[-1500:]}")
        print(f"\n2. validate --all after a launch ({coins}; {days} d synthetic, demo preset, {trials} trials; "
              f"the launch took {t_l:.0f} s and is not counted)")
        for mode in ("full", "screen"):
            t_v, vr = run([*cli, "validate", "--all", "--mode", mode, "--cohort", "bench", "--no-progress"], env)
            print(f"   validate --all --mode {mode:<6} {t_v:6.1f} s wall (exit {vr.returncode}; target < 60 s "
                  f"for 5 coins)")
            if vr.returncode not in (0, 3):
                print(vr.stdout[-2000:], vr.stderr[-2000:])
        t_c, cr = run([*cli, "checklist", "--json", "--cohort", "bench"], env)
        verdict = json.loads(cr.stdout)["verdict"] if cr.stdout.strip().startswith("{") else "n/a"
        print(f"   checklist --json        {t_c:6.1f} s wall (exit {cr.returncode}, portfolio {verdict})")
        for c in coins.split(","):
            p = data / "runs" / "bench" / c / "robustness.json"
            if p.exists():
                d = json.loads(p.read_text())
                print(f"   {c:<5} tier {d['tier']:<8} score {d['score']:5.1f}  pbo trials "
                      f"{len(d['trials']['pbo_trials'])}, MC paths {((d['monte_carlo'] or {}).get('bootstrap') or {}).get('n_paths')}")
    finally:
        if keep:
            print(f"   kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    p.add_argument("--days", type=int, default=1095)
    p.add_argument("--trials", type=int, default=150)
    p.add_argument("--coins", default="BTC,ETH,SOL,XRP,DOGE")
    p.add_argument("--skip-cli", action="store_true")
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    monte_carlo_speed()
    if not a.skip_cli:
        validate_speed(a.coins, a.days, a.trials, a.keep)


if __name__ == "__main__":
    main()
