#!/usr/bin/env python
"""Research-data speed benchmark (features + labels + ML dataset + QA): prints numbers, never asserts a timing.

    .venv/bin/python benchmarks/bench_features.py [--quick] [--days 365,1095] [--coins BTC,ETH] [--repeats N]
                                                   [--cold-numba] [--real DIR] [--real-days N]

What is timed is the pure core path, exactly the calls the Dagster assets in
``cryptoalgo_assets/defs/research_data.py`` make per coin partition, all in memory (no market store, no Parquet):

    features  build_features(panel, coin, coins[coin].features)       panel = every benchmarked coin
    labels    labels_for_coin(ohlcv[coin], coins[coin].label)         numba triple-barrier kernel
    dataset   build_ml_dataset(features, labels)
    QA        qa_report(coin, ohlcv ts, dataset, feature_names(...), gates.data_qa)

Inputs: the synthetic market (``config/synthetic.yaml``), generated once outside the timing for the last N days of
its calendar (the whole-calendar simulation of the first call and the per-size slicing are reported separately).
``--real DIR`` adds the same run on a replay directory (layout of ../shared/data/real) read through
``resources.sources.replay.ReplaySource``, last ``--real-days`` days (default 3 years); the file read is reported
separately.

Warm-up: the labels kernel's first call of the process (numba cache load, or JIT compile with ``--cold-numba``) is
timed and reported on its own, then one untimed pass of the whole pipeline on a 30-day slice warms pandas' code
paths. Each size then runs ``--repeats`` times; per-stage numbers are from the fastest repeat.

Memory: the tracemalloc peak comes from one extra, untimed repeat of the timed section (tracemalloc slows
allocation-heavy code, so it never overlaps the timing); ``maxrss`` is this process's ru_maxrss high-water mark
after each size (monotone: it includes the generated inputs and everything before).

Reference ("floor"): a plain pandas ``DataFrame.rolling(24).std()`` over a random float frame with the same
rows x features as the feature output (per coin, all coins), in the same process: the cost of one vectorised
rolling pass over the output. ``feat/ref`` and ``total/ref`` are the pipeline's times as multiples of it.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `resources` is imported from the checkout

if TYPE_CHECKING:
    import pandas as pd

    from cryptoalgo_core.config import CoinSpec, DataQaGates
    from cryptoalgo_core.features.build import MarketPanel

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
# Issue targets (5 coins): total seconds of features + labels + dataset + QA.
TARGETS_S: dict[int, float] = {365: 5.0, 1095: 15.0}
STAGES = ("features", "labels", "dataset", "qa")
MIB = 1024.0 * 1024.0


def maxrss_mib() -> float:
    """This process's ru_maxrss in MiB (KiB on Linux, bytes on macOS)."""
    v = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return v / MIB if sys.platform == "darwin" else v / 1024.0


@dataclass
class SizeResult:
    name: str
    coins: int
    days: int
    rows: int  # OHLCV bars in the panel (sum over coins) = rows through the pipeline
    n_features: int  # per coin
    prep_s: float  # generation (slice) or replay read time, outside the timing
    runs: list[dict[str, float]] = field(default_factory=list)
    ref_s: float = float("nan")
    tm_peak_mib: float = float("nan")
    maxrss_mib: float = float("nan")
    qa_fail: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict[str, float]:
        return min(self.runs, key=lambda r: r["total"])

    @property
    def median_total(self) -> float:
        return statistics.median(r["total"] for r in self.runs)


# ------------------------------------------------------------------------------------------- the timed pipeline
def run_pipeline(
    panel: MarketPanel, specs: dict[str, CoinSpec], gates: DataQaGates
) -> tuple[dict[str, float], list[str]]:
    """features -> labels -> dataset -> QA for every coin of the panel; per-stage seconds and failed QA checks."""
    from cryptoalgo_core.data_qa import qa_report
    from cryptoalgo_core.features.build import build_features, feature_names
    from cryptoalgo_core.features.dataset import build_ml_dataset, labels_for_coin

    coins = panel.coins
    names = {c: feature_names(coins, c, specs[c].features) for c in coins}
    t0 = time.perf_counter()
    feats = {c: build_features(panel, c, specs[c].features) for c in coins}
    t1 = time.perf_counter()
    labs = {c: labels_for_coin(panel.ohlcv[c], specs[c].label) for c in coins}
    t2 = time.perf_counter()
    ds = {c: build_ml_dataset(feats[c], labs[c]) for c in coins}
    t3 = time.perf_counter()
    failed: list[str] = []
    for c in coins:
        ts = panel.ohlcv[c]["ts"].to_numpy("int64")
        _, outcomes = qa_report(c, ts, ds[c], names[c], gates)
        failed += [f"{c}:{o.name}" for o in outcomes if not o.passed and o.severity == "ERROR"]
    t4 = time.perf_counter()
    times = {"features": t1 - t0, "labels": t2 - t1, "dataset": t3 - t2, "qa": t4 - t3, "total": t4 - t0}
    return times, failed


def tracemalloc_peak_mib(fn: Callable[[], object]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MIB


def reference_seconds(rows_per_coin: list[int], n_features: int, repeats: int) -> float:
    """Best-of-N seconds of `DataFrame.rolling(24).std()` on random frames of rows x n_features, one per coin."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frames = [pd.DataFrame(rng.standard_normal((n, n_features))) for n in rows_per_coin]
    best = float("inf")
    for _ in range(max(1, repeats)):
        gc.collect()
        t0 = time.perf_counter()
        for df in frames:
            df.rolling(24, min_periods=24).std()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_size(
    name: str,
    days: int,
    panel: MarketPanel,
    prep_s: float,
    specs: dict[str, CoinSpec],
    gates: DataQaGates,
    repeats: int,
) -> SizeResult:
    from cryptoalgo_core.features.build import feature_names

    coins = panel.coins
    n_feat = max(len(feature_names(coins, c, specs[c].features)) for c in coins)
    rows_per_coin = [len(panel.ohlcv[c]) for c in coins]
    res = SizeResult(name, len(coins), days, sum(rows_per_coin), n_feat, prep_s)
    for _ in range(max(1, repeats)):
        gc.collect()
        times, failed = run_pipeline(panel, specs, gates)
        res.runs.append(times)
        res.qa_fail = failed
    res.maxrss_mib = maxrss_mib()
    res.tm_peak_mib = tracemalloc_peak_mib(lambda: run_pipeline(panel, specs, gates))
    res.ref_s = reference_seconds(rows_per_coin, n_feat, repeats)
    return res


# ------------------------------------------------------------------------------------------------------ inputs
def synthetic_panel(cfg: Any, coins: list[str], start_ms: int, end_ms: int) -> MarketPanel:
    from cryptoalgo_core.features.build import MarketPanel
    from cryptoalgo_core.synthetic import generate

    series = generate(cfg, coins, start_ms, end_ms)
    # the columns `load_panel` of the Dagster assets selects from the market store
    return MarketPanel(
        ohlcv={c: s.ohlcv[["ts", "open", "high", "low", "close", "volume"]] for c, s in series.items()},
        funding={c: s.funding[["ts", "rate"]] for c, s in series.items()},
        open_interest={c: s.open_interest[["ts", "value"]] for c, s in series.items()},
    )


def replay_panel(directory: str, coins: list[str], specs: dict[str, CoinSpec], days: int) -> tuple[MarketPanel, str]:
    import pandas as pd

    from cryptoalgo_core.features.build import MarketPanel
    from resources.sources.base import UnsupportedDataError
    from resources.sources.replay import ReplaySource

    src = ReplaySource(directory)
    end = src.now_ms()
    start = end - days * DAY_MS
    ohlcv: dict[str, pd.DataFrame] = {}
    funding: dict[str, pd.DataFrame] = {}
    oi: dict[str, pd.DataFrame] = {}
    for c in coins:
        sym = specs[c].symbols.get("replay", c)
        ohlcv[c] = src.fetch_ohlcv(sym, start, end)[["ts", "open", "high", "low", "close", "volume"]]
        try:
            funding[c] = src.fetch_funding(sym, start, end)[["ts", "rate"]]
        except UnsupportedDataError:
            funding[c] = pd.DataFrame({"ts": pd.Series(dtype="int64"), "rate": pd.Series(dtype="float64")})
        try:
            oi[c] = src.fetch_open_interest(sym, start, end)[["ts", "value"]]
        except UnsupportedDataError:
            oi[c] = pd.DataFrame({"ts": pd.Series(dtype="int64"), "value": pd.Series(dtype="float64")})
    from cryptoalgo_core.timeutil import ms_to_iso

    return MarketPanel(ohlcv, funding, oi), f"{ms_to_iso(start)} .. {ms_to_iso(end)}"


# ------------------------------------------------------------------------------------------------------ output
def _f(v: float, spec: str) -> str:
    return format(v, spec) if v == v else "-"  # NaN -> "-"


def _qa_summary(failed: list[str]) -> str:
    """'coin:check' items -> 'check x N coins, ...' (ERROR-severity failures; info only, never asserted)."""
    if not failed:
        return "none"
    counts: dict[str, int] = {}
    for item in failed:
        check = item.split(":", 1)[1]
        counts[check] = counts.get(check, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in counts.items())


def print_results(results: list[SizeResult], warmup_h: int) -> None:
    print("\n== timings (seconds; per-stage from the fastest repeat) ==")
    head = (f"{'size':<18} {'coins':>5} {'days':>5} {'rows':>8} {'prep':>6} {'features':>8} {'labels':>7} "
            f"{'dataset':>7} {'QA':>6} {'total':>7} {'median':>7} {'rows/s':>8}  target")
    print(head)
    print("-" * len(head))
    for r in results:
        b = r.best
        target = TARGETS_S.get(r.days) if r.coins == 5 else None
        verdict = "" if target is None else f"<= {target:.0f} s: {'met' if b['total'] <= target else 'MISSED'}"
        print(f"{r.name:<18} {r.coins:>5} {r.days:>5} {r.rows:>8} {r.prep_s:>6.2f} {b['features']:>8.3f} "
              f"{b['labels']:>7.3f} {b['dataset']:>7.3f} {b['qa']:>6.3f} {b['total']:>7.3f} "
              f"{r.median_total:>7.3f} {r.rows / b['total']:>8.0f}  {verdict}")
    print("  prep = input generation (synthetic slice) or replay file read, outside the timing")

    print("\n== stage shares, reference floor, memory ==")
    head = (f"{'size':<18} {'feat%':>6} {'lab%':>5} {'ds%':>5} {'qa%':>5} {'feat r/s':>9} {'ref s':>7} "
            f"{'feat/ref':>8} {'total/ref':>9} {'tm peak':>8} {'maxrss':>7}  QA errors")
    print(head)
    print("-" * len(head))
    for r in results:
        b = r.best
        tot = b["total"]
        shares = " ".join(f"{100 * b[s] / tot:>{w}.0f}" for s, w in zip(STAGES, (6, 5, 5, 5), strict=True))
        print(f"{r.name:<18} {shares} {r.rows / b['features']:>9.0f} {_f(r.ref_s, '7.3f')} "
              f"{_f(b['features'] / r.ref_s, '8.1f')} {_f(tot / r.ref_s, '9.1f')} {_f(r.tm_peak_mib, '8.1f')} "
              f"{_f(r.maxrss_mib, '7.0f')}  {_qa_summary(r.qa_fail)}")
    print("  ref = pandas DataFrame.rolling(24).std() over random rows x features (features = per-coin count),")
    print("        one frame per coin; feat/ref, total/ref = pipeline seconds as multiples of it")
    print("  tm peak = tracemalloc peak (MiB) of one extra untimed repeat of the timed section;")
    print("  maxrss = ru_maxrss (MiB) high-water mark of this process after the size (includes inputs)")
    print("  QA errors = ERROR-severity qa_report checks that failed, x coins (informational; spans shorter than")
    print(f"              the {warmup_h} h feature warm-up leave an empty dataset and fail by design)")


# -------------------------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="smoke run: 30 and 90 days, one repeat")
    p.add_argument("--days", help="comma-separated history lengths in days (default 365,1095)")
    p.add_argument("--coins", help="comma-separated coins (default: every coin of config/coins.yaml)")
    p.add_argument("--repeats", type=int, help="timed repeats per size (default 3, --quick 1)")
    p.add_argument("--cold-numba", action="store_true",
                   help="point NUMBA_CACHE_DIR at an empty directory so the cold labels call includes the JIT compile")
    p.add_argument("--real", metavar="DIR", help="also run on a replay directory (e.g. ../shared/data/real)")
    p.add_argument("--real-days", type=int, help="days of replay history, ending at its last candle (default 1095)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cold_dir = None
    if args.cold_numba:
        cold_dir = tempfile.mkdtemp(prefix="bench_features_numba_")
        os.environ["NUMBA_CACHE_DIR"] = cold_dir  # before numba is imported (nothing heavy is imported yet)
    try:
        return run(args, cold_dir)
    finally:
        if cold_dir:
            shutil.rmtree(cold_dir, ignore_errors=True)


def run(args: argparse.Namespace, cold_dir: str | None) -> int:
    days_list = [int(d) for d in args.days.split(",")] if args.days else ([30, 90] if args.quick else [365, 1095])
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    real_days = args.real_days if args.real_days is not None else (90 if args.quick else 1095)

    t_imp = time.perf_counter()
    import numba
    import numpy as np
    import pandas as pd

    from cryptoalgo_core.config import load_coins, load_gates, resolve_coins
    from cryptoalgo_core.features.dataset import labels_for_coin
    from cryptoalgo_core.synthetic import calendar_bounds, load_synthetic_config

    import_s = time.perf_counter() - t_imp
    all_specs = load_coins()
    coins = resolve_coins(args.coins, all_specs)
    specs = {c: all_specs[c] for c in coins}
    gates = load_gates().data_qa
    cfg = load_synthetic_config()
    origin, cal_end = calendar_bounds(cfg)

    print("bench_features: features + labels + ML dataset + QA (pure core path of the research_data assets)")
    print(f"  python {platform.python_version()}  pandas {pd.__version__}  numpy {np.__version__}  "
          f"numba {numba.__version__}  cpus {os.cpu_count()}  {platform.machine()}")
    numba_note = (f"cold (empty NUMBA_CACHE_DIR={cold_dir})" if cold_dir
                  else f"NUMBA_CACHE_DIR={os.environ.get('NUMBA_CACHE_DIR', '(default: __pycache__)')}")
    print(f"  coins {','.join(coins)}  sizes {days_list} d  repeats {repeats}  numba cache: {numba_note}")
    print(f"  imports (pandas, numpy, numba, cryptoalgo_core): {import_s:.2f} s")

    # whole-calendar simulation, once (first generate() call of the process)
    syn_coins = [specs[c].symbols.get("synthetic", c) for c in coins]
    if syn_coins != coins:
        print("  note: synthetic symbols differ from coin names; the panel is keyed by the synthetic names")
    t0 = time.perf_counter()
    synthetic_panel(cfg, syn_coins, cal_end - DAY_MS, cal_end)
    sim_s = time.perf_counter() - t0
    cal_days = (cal_end - origin) // DAY_MS
    print(f"  synthetic generation, first call (whole {cal_days}-day calendar simulated and cached): {sim_s:.2f} s")

    # cold labels kernel: the first call of the process (numba cache load or compile)
    small = synthetic_panel(cfg, syn_coins, cal_end - 30 * DAY_MS, cal_end)
    c0 = syn_coins[0]
    spec0 = specs[coins[0]]
    t0 = time.perf_counter()
    labels_for_coin(small.ohlcv[c0], spec0.label)
    cold_lab = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels_for_coin(small.ohlcv[c0], spec0.label)
    warm_lab = time.perf_counter() - t0
    print(f"  labels_for_coin first call (numba {'compile' if cold_dir else 'cache load / compile'}), 1 coin x 30 d: "
          f"{cold_lab:.3f} s; warm repeat: {warm_lab * 1e3:.1f} ms")
    syn_specs = {s: specs[c] for s, c in zip(syn_coins, coins, strict=True)}
    t0 = time.perf_counter()
    run_pipeline(small, syn_specs, gates)
    print(f"  warm-up pass, whole pipeline on {len(coins)} coins x 30 d (untimed below): {time.perf_counter() - t0:.2f} s")

    results: list[SizeResult] = []
    for days in days_list:
        t0 = time.perf_counter()
        panel = synthetic_panel(cfg, syn_coins, max(origin, cal_end - days * DAY_MS), cal_end)
        gen_s = time.perf_counter() - t0
        print(f"  running synthetic {len(coins)} x {days} d ...", flush=True)
        results.append(bench_size(f"synthetic {days}d", days, panel, gen_s, syn_specs, gates, repeats))
        del panel
        gc.collect()

    if args.real:
        t0 = time.perf_counter()
        panel, span = replay_panel(args.real, coins, specs, real_days)
        read_s = time.perf_counter() - t0
        n_fund = sum(len(v) for v in panel.funding.values())
        n_oi = sum(len(v) for v in panel.open_interest.values())
        print(f"  running replay {args.real}: {span}, {sum(len(v) for v in panel.ohlcv.values())} candles, "
              f"{n_fund} funding, {n_oi} OI rows (read {read_s:.2f} s) ...", flush=True)
        results.append(bench_size(f"real {real_days}d", real_days, panel, read_s, specs, gates, repeats))

    from cryptoalgo_core.features.build import specs_for

    warmup_h = max((s.warmup_hours for c in syn_coins for s in specs_for(syn_coins, c, syn_specs[c].features)), default=0)
    print_results(results, warmup_h)
    print("\nIssue targets (5 coins, features + labels + dataset + QA): 365 d <= 5 s, 3 y (1095 d) <= 15 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
