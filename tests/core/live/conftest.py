"""A small synthetic market, a production model trained before a cut, and a paper run of hourly ticks
after it (shared by the paper-trading tests; built once per session)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pandas as pd
import pytest

from cryptoalgo_core import synthetic as syn
from cryptoalgo_core.config import load_coins
from cryptoalgo_core.features.build import MarketPanel
from cryptoalgo_core.features.plan import feature_plan
from cryptoalgo_core.live.tick import LiveCoin, decisions, train_for_staging
from cryptoalgo_core.research import synthetic_panel
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS

HISTORY_DAYS = 120


@dataclass
class PaperWorld:
    panel: MarketPanel
    live: LiveCoin
    cut: int
    end: int


def trailing(panel: MarketPanel, tick: int, days: int = HISTORY_DAYS) -> MarketPanel:
    """What a live tick loads from the store: the trailing history up to (and including) the tick time."""
    lo = tick - days * DAY_MS

    def f(d: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        return {c: x[(x["ts"] >= lo) & (x["ts"] <= tick)].reset_index(drop=True) for c, x in d.items()}

    return MarketPanel(f(panel.ohlcv), f(panel.funding), f(panel.open_interest))


def run_ticks(world: PaperWorld, ticks: list[int], last: int | None = None, scale: float = 1.0,
              state: str = "ACTIVE") -> pd.DataFrame:
    rows = []
    for t in ticks:
        r = decisions(world.live, trailing(world.panel, t), t, world.cut, last, scale, state, 72)
        if len(r):
            rows.append(r)
            last = int(r["ts"].max())
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="session")
def world() -> PaperWorld:
    cfg = syn.load_synthetic_config()
    _, hi = syn.calendar_bounds(cfg)
    coins = list(load_coins())
    panel = synthetic_panel(cfg, coins, hi - 330 * DAY_MS, hi)
    spec = load_coins()["ETH"]
    cut = hi - 30 * DAY_MS
    plan = feature_plan(panel.before(cut), "ETH", spec.features, (None, cut))
    model = train_for_staging(spec, plan, panel, cut)
    live = LiveCoin("ETH", "v1", model, spec, plan, "PILOT", 0.25,
                    {"brier": 0.25, "fee_edge_ratio": 0.5, "win_rate": 0.5})
    return PaperWorld(panel, live, cut, hi)


@pytest.fixture(scope="session")
def logged(world: PaperWorld) -> pd.DataFrame:
    """Hourly ticks over the 30 days after the cut (each decides the bar that just closed)."""
    return run_ticks(world, list(range(world.cut + HOUR_MS, world.end + 1, HOUR_MS)))


__all__ = ["HISTORY_DAYS", "PaperWorld", "dataclasses", "run_ticks", "trailing"]
