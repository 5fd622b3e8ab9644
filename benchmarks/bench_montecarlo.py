#!/usr/bin/env python
"""Trade Monte Carlo benchmark: :func:`cryptoalgo_core.robustness.montecarlo.monte_carlo` vs plain numpy (prints only).

    .venv/bin/python benchmarks/bench_montecarlo.py [--paths 10000] [--trades 100,1000,5000] [--repeats 5]

For each trade count and method (iid bootstrap, circular block bootstrap with block 10, reshuffle) it prints the
median wall time of ``--repeats`` calls of ``monte_carlo`` (after one warm-up call; the first call of the process,
which loads or compiles the numba kernels, is printed separately), the paths/s, and the same for a plain-numpy
reference computing the same statistics in the same process: paths drawn with ``Generator.integers`` (block
starts) or ``Generator.permuted``, gathered, compounded with ``np.cumprod`` and drawn down with
``np.maximum.accumulate``, in chunks of at most 2**20 path-trades (8 MiB) so its memory stays bounded too. The
``speedup`` column is reference time / module time. The trade returns are seeded normal(0.2 %, 2 %).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cryptoalgo_core.robustness.montecarlo import monte_carlo  # noqa: E402

REF_CHUNK = 1 << 20
CASES = [("bootstrap", 1), ("bootstrap", 10), ("reshuffle", 1)]


def numpy_reference(
    r: np.ndarray, n_paths: int, method: str, block: int, seed: int, floor: float = 0.5
) -> dict:
    """The statistics of :func:`monte_carlo` with vectorised numpy, chunk by chunk."""
    rng = np.random.default_rng(seed)
    n = r.shape[0]
    per = max(1, REF_CHUNK // n)
    mdd = np.empty(n_paths)
    final = np.empty(n_paths)
    ruin = np.empty(n_paths, dtype=bool)
    m = -(-n // block)
    base = np.arange(n)
    for start in range(0, n_paths, per):
        c = min(per, n_paths - start)
        if method == "reshuffle":
            idx = rng.permuted(np.broadcast_to(base, (c, n)), axis=1)
        elif block == 1:
            idx = rng.integers(0, n, size=(c, n))
        else:
            s = rng.integers(0, n, size=(c, m))
            idx = ((s[:, :, None] + np.arange(block)) % n).reshape(c, m * block)[:, :n]
        eq = np.cumprod(1.0 + r[idx], axis=1)
        peak = np.maximum(np.maximum.accumulate(eq, axis=1), 1.0)
        mdd[start : start + c] = (1.0 - eq / peak).max(axis=1)
        final[start : start + c] = eq[:, -1] - 1.0
        ruin[start : start + c] = (eq < floor).any(axis=1)
    return {
        "max_drawdown": dict(zip(("p50", "p95", "p99"), np.quantile(mdd, (0.5, 0.95, 0.99)), strict=True)),
        "prob_ruin": float(ruin.mean()),
        "final_return": {"mean": float(final.mean())},
        "prob_loss": float((final < 0).mean()),
    }


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--trades", default="100,1000,5000")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    trade_counts = [int(x) for x in args.trades.split(",")]

    r0 = np.random.default_rng(0).normal(0.002, 0.02, 100)
    t0 = time.perf_counter()
    monte_carlo(r0, n_paths=100)
    monte_carlo(r0, n_paths=100, method="reshuffle")
    print(f"first calls (numba cache load or JIT compile): {time.perf_counter() - t0:.2f} s")
    print(f"{args.paths} paths, median of {args.repeats} runs")
    print(
        f"{'trades':>6s} {'method':>16s} {'module s':>9s} {'paths/s':>11s} {'numpy s':>9s} {'paths/s':>11s}"
        f" {'speedup':>8s}  check (module vs numpy: p95 mdd, mean final)"
    )
    for n in trade_counts:
        r = np.random.default_rng(n).normal(0.002, 0.02, n)
        for method, block in CASES:
            label = method if block == 1 else f"{method}/b{block}"
            t_mod = median_time(
                partial(monte_carlo, r, n_paths=args.paths, method=method, block=block), args.repeats
            )
            t_ref = median_time(partial(numpy_reference, r, args.paths, method, block, seed=1), args.repeats)
            a = monte_carlo(r, n_paths=args.paths, method=method, block=block)
            b_ = numpy_reference(r, args.paths, method, block, seed=1)
            check = (
                f"{a['max_drawdown']['p95']:.4f} vs {b_['max_drawdown']['p95']:.4f}, "
                f"{a['final_return']['mean']:+.4f} vs {b_['final_return']['mean']:+.4f}"
            )
            print(
                f"{n:6d} {label:>16s} {t_mod:9.4f} {args.paths / t_mod:11.0f} {t_ref:9.4f} "
                f"{args.paths / t_ref:11.0f} {t_ref / t_mod:7.1f}x  {check}"
            )


if __name__ == "__main__":
    main()
