"""Which features a coin gets from the data at hand (pure).

Open interest is optional (the seed's `--include-oi`): a coin with no open interest at all in the panel gets
its `open_interest` group left out automatically (recorded with the reason, warned about in QA) instead of
blocking on 100 % missing OI features. Open interest that exists but stops early is NOT left out: QA
blocks it and names the end date, and a research window that ends there fixes it.

The plan also records the span of every input of the coin, so data QA can explain missing features.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from cryptoalgo_core.features.build import MarketPanel, build_features
from cryptoalgo_core.features.registry import FeatureSelection, registry, selected
from cryptoalgo_core.timeutil import DAY_MS, HOUR_MS, ms_to_iso

OPTIONAL_GROUPS = {"open_interest": "open_interest"}  # feature group -> panel input it needs
CROSS_SECTIONAL = ("rel_ret_24", "xs_rank_ret_1", "xs_rank_ret_24", "dispersion_24")  # need >= 2 coins
BTC_FEATURES = ("btc_ret_1", "btc_ret_4", "btc_ret_24", "btc_rv_24")  # need BTC in the panel


@dataclass(frozen=True)
class ResearchBounds:
    """Where research may look: [start, holdout_start). The holdout [holdout_start, end) is read once, by the
    holdout evaluation; features, labels, QA, the walk-forward model and the backtest never see it.

    `end` is the research window's end, or (without one) the end of the coin's stored candles; holdout_start =
    end - holdout_days. Labels whose horizon reaches past holdout_start are unlabeled (the data stops there).
    """

    start: int | None
    holdout_start: int
    end: int
    holdout_days: int

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "holdout_start": self.holdout_start, "end": self.end,
                "holdout_days": self.holdout_days, "holdout": f"{ms_to_iso(self.holdout_start)} .. {ms_to_iso(self.end)}"}


MIN_RESEARCH_DAYS = 30  # a research span shorter than this before the holdout is refused


def research_bounds(window: tuple[int | None, int | None], last_bar_ts: int, holdout_days: int,
                    first_bar_ts: int | None = None) -> ResearchBounds:
    """The research bounds of a coin whose stored candles (inside the window) open at `first_bar_ts` ..
    `last_bar_ts`. ValueError when the holdout leaves fewer than MIN_RESEARCH_DAYS of research data."""
    if holdout_days < 0:
        raise ValueError(f"holdout_days must be >= 0, got {holdout_days}")
    end = last_bar_ts + HOUR_MS if window[1] is None else min(int(window[1]), last_bar_ts + HOUR_MS)
    holdout_start = end - holdout_days * DAY_MS
    first = first_bar_ts if window[0] is None or first_bar_ts is None else max(int(window[0]), first_bar_ts)
    if first is not None and holdout_start - first < MIN_RESEARCH_DAYS * DAY_MS:
        left = max(0.0, (holdout_start - first) / DAY_MS)
        raise ValueError(
            f"a {holdout_days}-day holdout ({ms_to_iso(holdout_start)} .. {ms_to_iso(end)}) leaves {left:.1f} days "
            f"of research data from {ms_to_iso(first)} (need >= {MIN_RESEARCH_DAYS}): shorten the holdout "
            "(--holdout-days) or ingest more history")
    return ResearchBounds(window[0], holdout_start, end, holdout_days)


@dataclass(frozen=True)
class FeaturePlan:
    coin: str
    panel_coins: tuple[str, ...]
    selection: FeatureSelection
    names: tuple[str, ...]
    groups: dict[str, str]  # feature -> group
    dropped: dict[str, str] = field(default_factory=dict)  # group -> why it was left out
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # input -> rows, first_ts, last_ts
    window: tuple[int | None, int | None] = (None, None)  # what the features saw: [start, holdout_start)
    holdout: dict[str, Any] = field(default_factory=dict)  # ResearchBounds.as_dict()

    def build(self, panel: MarketPanel) -> pd.DataFrame:
        return build_features(panel, self.coin, self.selection)

    def by_group(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for n in self.names:
            out[self.groups[n]] = out.get(self.groups[n], 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "coin": self.coin,
            "panel_coins": list(self.panel_coins),
            "features": list(self.names),
            "groups": dict(self.groups),
            "disabled_groups": list(self.selection.disabled_groups),
            "exclude": list(self.selection.exclude),
            "dropped": dict(self.dropped),
            "inputs": self.inputs,
            "window": {"start": self.window[0], "end": self.window[1]},
            "holdout": dict(self.holdout),
        }

    @property
    def holdout_start(self) -> int:
        return int(self.holdout["holdout_start"])

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeaturePlan:
        w = d.get("window") or {}
        return cls(
            coin=d["coin"],
            panel_coins=tuple(d["panel_coins"]),
            selection=FeatureSelection(tuple(d.get("disabled_groups", ())), tuple(d.get("exclude", ()))),
            names=tuple(d["features"]),
            groups=dict(d["groups"]),
            dropped=dict(d.get("dropped", {})),
            inputs=dict(d.get("inputs", {})),
            window=(w.get("start"), w.get("end")),
            holdout=dict(d.get("holdout", {})),
        )


def _span(df: pd.DataFrame | None) -> dict[str, Any]:
    if df is None or df.empty:
        return {"rows": 0, "first_ts": None, "last_ts": None}
    ts = df["ts"]
    return {"rows": int(len(df)), "first_ts": int(ts.min()), "last_ts": int(ts.max()),
            "first": ms_to_iso(int(ts.min())), "last": ms_to_iso(int(ts.max()))}


def feature_plan(
    panel: MarketPanel,
    coin: str,
    selection: FeatureSelection | None = None,
    window: tuple[int | None, int | None] = (None, None),
    missing_basket: list[str] | None = None,
    bounds: ResearchBounds | None = None,
) -> FeaturePlan:
    """The feature set of `coin` on `panel`: the configured selection minus optional groups whose input the
    coin has no data for at all. `missing_basket`: basket coins left out of the panel for lack of OHLCV (the
    shared features then come from the rest of the basket; recorded as a warning)."""
    sel = selection or FeatureSelection()
    inputs = {
        "ohlcv": _span(panel.ohlcv.get(coin)),
        "funding": _span(panel.funding.get(coin)),
        "open_interest": _span(panel.open_interest.get(coin)),
    }
    dropped: dict[str, str] = {}
    for group, source in OPTIONAL_GROUPS.items():
        if group in sel.disabled_groups:
            continue
        if inputs[source]["rows"] == 0:
            dropped[group] = (f"no {source.replace('_', ' ')} stored for {coin}"
                              + (" inside the research window" if any(w is not None for w in window) else "")
                              + " (ingest it with --include-oi to use these features)")
    undefined = [*(CROSS_SECTIONAL if len(panel.coins) < 2 else ()), *(BTC_FEATURES if "BTC" not in panel.coins else ())]
    eff = replace(sel, disabled_groups=(*sel.disabled_groups, *dropped),
                  exclude=(*sel.exclude, *[n for n in undefined if n not in sel.exclude]))
    if missing_basket:
        dropped["basket"] = (f"no OHLCV for basket coin(s) {', '.join(missing_basket)}"
                             + (" inside the research window" if any(w is not None for w in window) else "")
                             + f": the shared market features use {', '.join(c for c in panel.coins)} only "
                             "(ingest the whole basket for the configured feature set)"
                             + (f"; undefined without them: {', '.join(undefined)}" if undefined else ""))
    specs = selected(registry(panel.coins, coin), eff)
    return FeaturePlan(
        coin=coin,
        panel_coins=tuple(panel.coins),
        selection=eff,
        names=tuple(s.name for s in specs),
        groups={s.name: s.group for s in specs},
        dropped=dropped,
        inputs=inputs,
        window=window,
        holdout=bounds.as_dict() if bounds is not None else {},
    )
