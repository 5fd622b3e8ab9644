"""A self-contained HTML report of a coin's backtest (inline SVG charts, no JavaScript, no I/O)."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from cryptoalgo_core.metrics import drawdown_series


def _polyline(y: np.ndarray, w: int, h: int, lo: float, hi: float) -> str:
    if y.size < 2 or not np.isfinite(y).any():
        return ""
    idx = np.linspace(0, y.size - 1, min(y.size, 1500)).astype(int)
    ys = y[idx]
    span = (hi - lo) or 1.0
    pts = " ".join(f"{i * w / (len(idx) - 1):.1f},{h - (v - lo) / span * h:.1f}" for i, v in enumerate(ys) if np.isfinite(v))
    return pts


def equity_svg(equity: np.ndarray, w: int = 900, h: int = 220) -> str:
    eq = np.asarray(equity, float)
    eq = eq[np.isfinite(eq)]
    if eq.size < 2:
        return "<p>no equity curve</p>"
    dd = drawdown_series(eq)
    lo, hi = float(eq.min()), float(eq.max())
    return (
        f'<svg width="{w}" height="{h + 120}" xmlns="http://www.w3.org/2000/svg" font-size="11">'
        f'<text x="0" y="12">equity (start 1.0): min {lo:.3f} max {hi:.3f} end {eq[-1]:.3f}</text>'
        f'<g transform="translate(0,18)"><rect width="{w}" height="{h}" fill="#fafafa" stroke="#ccc"/>'
        f'<polyline fill="none" stroke="#1f5fbf" stroke-width="1.2" points="{_polyline(eq, w, h, lo, hi)}"/></g>'
        f'<text x="0" y="{h + 34}">drawdown: max {dd.min():.1%}</text>'
        f'<g transform="translate(0,{h + 40})"><rect width="{w}" height="70" fill="#fafafa" stroke="#ccc"/>'
        f'<polyline fill="none" stroke="#bf1f1f" stroke-width="1" points="{_polyline(dd, w, 70, float(dd.min()), 0.0)}"/></g>'
        "</svg>"
    )


def waterfall_svg(edge: dict[str, float], w: int = 520, h: int = 200) -> str:
    steps = [("gross", edge["gross_bps"]), ("fees", -edge["fees_bps"]), ("slippage", -edge["slippage_bps"]),
             ("funding", -edge["funding_bps"])]
    levels = [0.0]
    for _, v in steps:
        levels.append(levels[-1] + v)
    lo, hi = min(levels + [edge["net_bps"], 0.0]), max(levels + [edge["net_bps"], 0.0])
    span = (hi - lo) or 1.0

    def y(v: float) -> float:
        return 20 + (hi - v) / span * (h - 40)

    bars, x, bw = [], 10, 80
    for i, (name, v) in enumerate(steps):
        a, b = levels[i], levels[i + 1]
        colour = "#2e8b57" if v >= 0 else "#c0392b"
        bars.append(f'<rect x="{x}" y="{min(y(a), y(b)):.1f}" width="{bw}" height="{abs(y(a) - y(b)):.1f}" fill="{colour}"/>'
                    f'<text x="{x}" y="{h - 2}">{name} {v:+.1f}</text>')
        x += bw + 20
    net = edge["net_bps"]
    bars.append(f'<rect x="{x}" y="{min(y(0), y(net)):.1f}" width="{bw}" height="{abs(y(0) - y(net)):.1f}" '
                f'fill="{"#1f5fbf" if net >= 0 else "#7f1f1f"}"/><text x="{x}" y="{h - 2}">net {net:+.1f}</text>')
    zero = f'<line x1="0" x2="{w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#333" stroke-dasharray="3,3"/>'
    return f'<svg width="{w}" height="{h + 10}" xmlns="http://www.w3.org/2000/svg" font-size="11">{zero}{"".join(bars)}</svg>'


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(r[c])}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else "n/a"  # e.g. fee/edge without a positive gross edge (as the CLI)
    return html.escape(str(v))


def render_report(diag: dict[str, Any], equity: np.ndarray) -> str:
    e, x = diag["edge"], diag["exits"]
    w = diag.get("edge_size_weighted")
    exits = [{"reason": r, "share": f"{s:.1%}", **{k: v for k, v in x["by_reason"][r].items()}}
             for r, s in x["shares"].items()]
    cal = diag["calibration"]["direction"]
    perf = [{k: v for k, v in diag["performance"].items()}]
    unc = diag.get("edge_uncertainty") or {}
    ci_rows = [{"figure": k, "weighting": wt, **{c: v[c] for c in ("mean", "se", "lo", "hi", "n")}}
               for wt in ("per_trade", "size_weighted") for k, v in (unc.get(wt) or {}).items()]
    folds = diag.get("folds") or {}
    fold_rows = [{k: r.get(k) for k in ("fold", "n", "auc", "trades", "net_bps")} for r in folds.get("by_fold", [])]
    fold_sum = [{"figure": k, **v} for k, v in ((k, folds.get(k) or {}) for k in ("auc", "net_bps")) if v]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(diag['coin'])} backtest</title>
<style>body{{font-family:sans-serif;margin:24px;max-width:1000px}}table{{border-collapse:collapse;margin:8px 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#eee}}</style></head><body>
<h1>{html.escape(diag['coin'])} — out-of-sample backtest</h1>
<p>window {diag['window']['start']} .. {diag['window']['end']} ({diag['window']['years']} y), venue
{html.escape(str(diag['costs']['venue']))} / {html.escape(str(diag['costs']['fee_tier']))}</p>
<h2>Equity and drawdown</h2>{equity_svg(equity)}
<h2>Edge decomposition (bps per trade)</h2>{waterfall_svg(e)}{_table([e])}
<p>Size-weighted (trades weighted by position size: the edge the equity curve earns)</p>{_table([w] if w else [])}
<p>Uncertainty: standard error and 95 % interval of each figure (Newey–West over the trades in time order)</p>
{_table(ci_rows)}
<h2>Walk-forward folds</h2><p>directional AUC and net edge per fold (each fold's model is calibrated on its own
slice), and their mean, spread and t-interval across folds</p>{_table(fold_rows)}{_table(fold_sum)}
<h2>Exit reasons</h2>{_table(exits)}
<h2>Regime buckets at entry</h2>{_table(diag['regimes'])}
<h2>Calibration of P(up first | touched)</h2><p>Brier {cal['brier']:.4f}, directional AUC
{diag['calibration']['directional_auc']:.4f}, n {cal['n']}</p>{_table(cal['bins'])}
<h2>Signal funnel</h2>{_table([diag['signal_funnel']])}
<h2>Performance</h2>{_table(perf)}
</body></html>"""
