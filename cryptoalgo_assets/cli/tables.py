"""The tables commands print (rich). Cell text is escaped: '[open_interest]' prints as written."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.markup import escape
from rich.table import Table

FUNNEL_ORDER = ("bars_with_prediction", "entry_rule", "after_vol_filter", "after_momentum_filter",
                "after_trend_filter")
EXIT_ORDER = ("stop_loss", "take_profit", "time", "signal", "end")


def _row(table: Table, *cells: Any) -> None:
    table.add_row(*[escape(str(c)) for c in cells])


def fee_edge(r: float | None) -> str:
    """fee/edge ratio; 'n/a' when there is no positive gross edge for fees to eat (same text as report.html)."""
    return "n/a" if r is None or not math.isfinite(r) else f"{r:.2f}"


def summary_table(store: Any, coins: list[str] | None = None) -> Table:
    from cryptoalgo_core.market.gaps import find_gaps
    from cryptoalgo_core.timeutil import ms_to_iso
    from resources.store import redact_url

    table = Table(title=escape(f"market data — {redact_url(store.url)}"))
    for col in ("coin", "candles", "first", "last", "gaps", "largest gap h", "rejects", "funding", "OI", "source"):
        table.add_column(col, justify="right" if col not in ("coin", "first", "last", "source") else "left")
    for coin in coins or store.coins():
        st = store.stats("ohlcv", coin)
        ts = store.load_ts("ohlcv", coin)
        if ts:
            rep = find_gaps(ts, ts[0], ts[-1] + 3_600_000)
            gaps, largest = str(rep.n_gaps), str(rep.largest)
        else:
            gaps, largest = "-", "-"
        _row(table, coin, st["rows"], ms_to_iso(st["first_ts"]), ms_to_iso(st["last_ts"]), gaps, largest,
             len(store.rejects(coin=coin)), store.stats("funding", coin)["rows"],
             store.stats("open_interest", coin)["rows"], ",".join(st["sources"]) or "-")
    return table


def qa_table(rows: dict[str, dict[str, Any]], coins: list[str], where: str) -> Table:
    table = Table(title=escape(f"data QA — {where}"))
    cols = ["coin", "rows", "labeled", "pos rate", "gaps", "largest gap h", "worst missing", "drifted", "gaps",
            "target", "missing", "drift"]
    for c in cols:
        table.add_column(c, justify="left" if c == "coin" else "right")
    for coin in coins:
        r = rows.get(coin)
        if r is None:
            _row(table, coin, *["-"] * (len(cols) - 1))
            continue
        pr = r["positive_rate"]
        _row(table, coin, r["rows"], r["labeled_rows"], "-" if pr is None else f"{pr:.3f}", r["n_gaps"],
             r["largest_gap_hours"], f"{r['worst_missing']:.2%}", r["drift_flagged"], r.get("check_qa_gaps", "-"),
             r.get("check_qa_target", "-"), r.get("check_qa_missingness", "-"), r.get("check_qa_drift", "-"))
    return table


def read_diagnostics(art: Any, coin: str, cohort: str) -> dict[str, Any] | None:
    p = art.path("runs", cohort, coin, "diagnostics.json")
    return json.loads(p.read_text()) if p.exists() else None


def edge_table(art: Any, coins: list[str], cohort: str) -> Table:
    t = Table(title=escape(f"edge decomposition (bps per trade, out of sample; 95% intervals Newey–West; AUC folds "
                           f"= mean±sd over walk-forward folds) — cohort {cohort}"))
    cols = ("coin", "trades", "dir AUC", "AUC folds", "gross", "fees", "slippage", "funding", "net", "net 95% CI",
            "fee/edge",
            "stop-loss", "take-profit", "time", "signal", "end", "win rate", "avg hold h", "total return", "max DD")
    for c in cols:
        t.add_column(c, justify="left" if c == "coin" else "right")
    for coin in coins:
        d = read_diagnostics(art, coin, cohort)
        if d is None:
            _row(t, coin, *["-"] * (len(cols) - 1))
            continue
        e, x, p = d["edge"], d["exits"], d["performance"]
        sh = x["shares"]
        ci = (d.get("edge_uncertainty") or {}).get("per_trade", {}).get("net")
        fa = (d.get("folds") or {}).get("auc") or {}
        _row(t, coin, e["trades"], f"{d['calibration']['directional_auc']:.3f}",
             f"{fa['mean']:.3f}±{fa['std']:.3f}" if fa.get("n") else "-", f"{e['gross_bps']:.1f}",
             f"{e['fees_bps']:.1f}", f"{e['slippage_bps']:.1f}", f"{e['funding_bps']:.1f}", f"{e['net_bps']:.1f}",
             f"[{ci['lo']:.1f}, {ci['hi']:.1f}]" if ci else "-", fee_edge(e["fee_edge_ratio"]), *[f"{sh.get(r, 0.0):.0%}" for r in EXIT_ORDER],
             f"{x['win_rate']:.0%}", f"{x['avg_hold_hours']:.1f}", f"{p['total_return']:+.1%}",
             f"{p['max_drawdown']:.1%}")
    return t


def coin_detail_tables(art: Any, coin: str, cohort: str) -> list[Table]:
    d = read_diagnostics(art, coin, cohort)
    if d is None:
        return []
    ex = Table(title=f"{coin}: exit reasons")
    for c in ("reason", "share", "trades", "net bps", "avg hold h"):
        ex.add_column(c, justify="left" if c == "reason" else "right")
    for r in [r for r in EXIT_ORDER if r in d["exits"]["shares"]]:
        b = d["exits"]["by_reason"][r]
        _row(ex, r, f"{d['exits']['shares'][r]:.1%}", b["trades"], f"{b['net_bps']:.1f}", f"{b['avg_hold_hours']:.1f}")
    rg = Table(title=f"{coin}: regime buckets at entry")
    for c in ("vol", "trend", "trades", "net bps", "win rate"):
        rg.add_column(c, justify="left" if c in ("vol", "trend") else "right")
    for r in d["regimes"]:
        _row(rg, r["vol"], r["trend"], r["trades"], f"{r['net_bps']:.1f}", f"{r['win_rate']:.0%}")
    cal = d["calibration"]["direction"]
    cb = Table(title=f"{coin}: calibration of P(up first | touched) — Brier {cal['brier']:.4f}, n {cal['n']}")
    for c in ("bin", "n", "mean predicted", "observed"):
        cb.add_column(c, justify="right")
    for b in cal["bins"]:
        _row(cb, b["bin"], b["n"], f"{b['mean_pred']:.3f}", f"{b['observed']:.3f}")
    fn = Table(title=f"{coin}: signal funnel (bars, in pipeline order)")
    fn.add_column("step")
    fn.add_column("bars", justify="right")
    funnel = d["signal_funnel"]
    for k in [*[k for k in FUNNEL_ORDER if k in funnel], *[k for k in funnel if k not in FUNNEL_ORDER]]:
        _row(fn, k, funnel[k])
    return [ex, rg, cb, fn]
