"""The study tests' inputs, and a worker process running one study on them.

Importable (``tests.core.optimize.study_worker``: :func:`build_inputs`, :func:`make_data`, :func:`tamper_holdout`)
and runnable::

    python tests/core/optimize/study_worker.py <storage> <study_name> <budget> <worker_id> <cache_dir>

The worker rebuilds the same inputs deterministically (synthetic market seed 11, ETH, the ``quick`` preset), runs
:func:`~cryptoalgo_core.optimize.study.run_study` with a disk-backed prediction cache in ``cache_dir`` and appends
the number of every trial it finished to ``<cache_dir>/worker-<worker_id>.trials`` (one per line). With env
``STUDY_WORKER_GO=<path>`` it first writes ``<path>.ready-<worker_id>`` once its inputs are built and waits (up to
``STUDY_WORKER_GO_TIMEOUT`` s, default 120) for ``<path>`` to exist, so concurrent workers start together.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SEED = 11
YEARS = 0.9
COIN = "ETH"
PRESET = "quick"
BASELINE_TRIALS = 15  # the shared baseline study (conftest.py); the quick preset prunes within it


@dataclass
class Inputs:
    """One coin's research inputs, built the way the study stage builds them (research rows only)."""

    panel: Any  # the full MarketPanel, holdout included
    seen: Any  # the panel before holdout_start
    holdout_start: int
    spec: Any
    names: list[str]
    features: pd.DataFrame  # built on `seen`
    preset: Any

    @property
    def ohlcv(self) -> pd.DataFrame:
        return self.seen.ohlcv[COIN]

    @property
    def funding(self) -> pd.DataFrame:
        return self.seen.funding[COIN]

    def fingerprint(self) -> str:
        from cryptoalgo_core.optimize.evaluate import fingerprint

        return fingerprint(self.features, self.ohlcv, self.funding)


def synthetic_market(seed: int = SEED, years: float = YEARS) -> Any:
    from cryptoalgo_core import synthetic as syn
    from cryptoalgo_core.research import scaled_synthetic_config, synthetic_panel

    cfg = scaled_synthetic_config(seed=seed, strength=1.0, years=years)
    start, end = syn.calendar_bounds(cfg)
    return synthetic_panel(cfg, list(cfg.coin_names), start, end)


def holdout_start_of(panel: Any, holdout_days: int) -> int:
    from cryptoalgo_core.features.plan import research_bounds

    return research_bounds((None, None), int(panel.ohlcv[COIN]["ts"].max()), holdout_days).holdout_start


def before(panel: Any, ts: int) -> Any:
    """``panel`` with only the rows strictly before ``ts`` (every coin, every input)."""
    from cryptoalgo_core.features.build import MarketPanel

    return MarketPanel(*({c: f[f["ts"] < ts].reset_index(drop=True) for c, f in d.items()}
                         for d in (panel.ohlcv, panel.funding, panel.open_interest)))


def build_inputs(panel: Any | None = None, holdout_start: int | None = None) -> Inputs:
    """The study inputs of ``panel`` (default: the synthetic market) with the quick preset's holdout (or
    ``holdout_start``)."""
    from cryptoalgo_core.config import load_coins
    from cryptoalgo_core.features.plan import feature_plan, research_bounds
    from cryptoalgo_core.optimize.space import load_preset

    panel = synthetic_market() if panel is None else panel
    preset = load_preset(PRESET, COIN)
    spec = load_coins()[COIN]
    bounds = research_bounds((None, None), int(panel.ohlcv[COIN]["ts"].max()), preset.holdout_days)
    hs = bounds.holdout_start if holdout_start is None else int(holdout_start)
    seen = before(panel, hs)
    plan = feature_plan(seen, COIN, spec.features, (None, hs), bounds=bounds)
    return Inputs(panel, seen, hs, spec, list(plan.names), plan.build(seen), preset)


def make_data(inp: Inputs, preset: Any | None = None, fingerprint: str | None = None) -> Any:
    """A fresh StudyData of ``inp`` (``fits`` starts at 0)."""
    from cryptoalgo_core.optimize.study import StudyData

    return StudyData.prepare(COIN, inp.spec, inp.features, inp.names, inp.ohlcv, inp.funding, inp.holdout_start,
                             preset or inp.preset, fingerprint or inp.fingerprint())


def tamper_holdout(panel: Any, hs: int) -> Any:
    """A copy of ``panel`` whose every row at or after ``hs`` is changed, for every coin and input: prices,
    volumes, funding rates and open interest scaled, every 5th row deleted, NaNs in every 7th remaining row."""
    from cryptoalgo_core.features.build import MarketPanel

    def tamper(df: pd.DataFrame, scale: float) -> pd.DataFrame:
        df = df.copy()
        late = np.flatnonzero(df["ts"].to_numpy() >= hs)
        cols = [c for c in df.columns if c != "ts"]
        df.loc[df.index[late], cols] = df.loc[df.index[late], cols] * scale
        df = df.drop(index=df.index[late[::5]]).reset_index(drop=True)
        late = np.flatnonzero(df["ts"].to_numpy() >= hs)
        df.loc[df.index[late[3::7]], cols] = np.nan
        return df

    return MarketPanel({c: tamper(f, 1.7) for c, f in panel.ohlcv.items()},
                       {c: tamper(f, -3.0) for c, f in panel.funding.items()},
                       {c: tamper(f, 0.4) for c, f in panel.open_interest.items()})


def _wait_for_go(worker: int) -> None:
    go = os.environ.get("STUDY_WORKER_GO")
    if not go:
        return
    Path(f"{go}.ready-{worker}").write_text(str(os.getpid()))
    deadline = time.monotonic() + float(os.environ.get("STUDY_WORKER_GO_TIMEOUT", "120"))
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"worker {worker}: no go signal at {go}")
        time.sleep(0.02)


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    storage, name, budget, worker, cache_dir = argv[0], argv[1], int(argv[2]), int(argv[3]), Path(argv[4])
    from cryptoalgo_core.optimize.cache import PredictionCache
    from cryptoalgo_core.optimize.study import open_storage, run_study

    inp = build_inputs()
    data = make_data(inp)
    cache_dir.mkdir(parents=True, exist_ok=True)
    log = cache_dir / f"worker-{worker}.trials"
    log.touch()

    def on_trial(_study: Any, trial: Any) -> None:
        with log.open("a") as fh:
            fh.write(f"{trial.number}\n")

    _wait_for_go(worker)
    run_study(data, inp.preset, budget, open_storage(storage), name, PredictionCache(cache_dir), on_trial=on_trial,
              worker=worker)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
