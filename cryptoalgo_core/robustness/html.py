"""The per-coin robustness report page and the cohort index page (plotly, no I/O: both return strings).

Like :mod:`cryptoalgo_core.optimize.report`, the coin page loads plotly.js from ``plotly_src`` (the caller
writes :func:`cryptoalgo_core.optimize.report.plotly_js` once per directory) and embeds each figure with
``fig.to_html(full_html=False, include_plotlyjs=False)``. Every key of the robustness document is optional: a
missing or None value is shown as "n/a" and a section without data says so instead of drawing a figure. All
text taken from the inputs is HTML-escaped (plotly escapes ``<`` and ``>`` in the figure JSON itself).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["TIER_COLORS", "index_html", "robustness_html"]

NA = "n/a"
TIER_COLORS: dict[str, str] = {"REJECT": "#bf1f1f", "RESEARCH": "#7a7a7a", "PAPER": "#c98a00",
                               "PILOT": "#1f5fbf", "FULL": "#2a8a2a"}
_GREEN, _RED, _GREY, _BLUE = "#2a8a2a", "#bf1f1f", "#999999", "#1f5fbf"
_STYLE = (
    "body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}"
    "h1{margin-bottom:4px} h2{margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:2px}"
    "table{border-collapse:collapse;margin:6px 0}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left} th{background:#f3f3f3}"
    "tr.fail td{background:#f8d0d0} .hard{font-weight:bold;color:#8a0000}"
    ".badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:bold;"
    "font-size:0.9em;vertical-align:middle} .na{color:#888;font-style:italic} .meta{color:#555}"
    ".pass{color:#2a8a2a;font-weight:bold} .failtxt{color:#bf1f1f;font-weight:bold}"
)


# ---------------------------------------- formatting


def _num(v: Any) -> float | None:
    """``v`` as a finite float, else None (bools are not numbers here)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _fmt(v: Any) -> str:
    """Plain text of a value: None/NaN/inf -> n/a, floats with 4 significant digits."""
    if v is None:
        return NA
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.4g}" if math.isfinite(float(v)) else NA
    return str(v)


def _pct(v: Any, digits: int = 2) -> str:
    f = _num(v)
    return NA if f is None else f"{100.0 * f:.{digits}f}%"


def _e(v: Any) -> str:
    """Escaped text of a value."""
    return html.escape(_fmt(v))


def _verdict(v: Any) -> str:
    if v is None:
        return f"<span class='na'>{NA}</span>"
    return "<span class='pass'>PASS</span>" if v else "<span class='failtxt'>FAIL</span>"


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, (list, tuple)) else []


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _badge(tier: Any) -> str:
    color = TIER_COLORS.get(str(tier).upper(), _GREY) if tier is not None else _GREY
    return f"<span class='badge' style='background:{color}'>{_e(tier)}</span>"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]],
           classes: Sequence[str] | None = None) -> str:
    """A table; ``headers`` are plain text (escaped here), row cells are already-escaped HTML; ``classes``
    (one per row, "" for none) become the rows' class attributes."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        (f"<tr class='{classes[i]}'>" if classes and classes[i] else "<tr>")
        + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for i, r in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _na(what: str = "") -> str:
    return f"<p class='na'>{NA}{' — ' + html.escape(what) if what else ''}</p>"


def _section(key: str, title: str, body: str) -> str:
    return f"<section id='{key}'><h2>{html.escape(title)}</h2>\n{body}\n</section>"


def _fig_html(fig: Any) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False))


def _sign_colors(ys: Sequence[float | None]) -> list[str]:
    return [_GREY if y is None else (_GREEN if y > 0 else _RED) for y in ys]


# ---------------------------------------- sections


def _gates(doc: dict[str, Any]) -> str:
    gates = [g for g in _list(doc.get("gates")) if isinstance(g, dict)]
    if not gates:
        return _na("no gates")
    rows, classes = [], []
    for g in gates:
        hard = g.get("hard")
        kind = "<span class='hard'>hard</span>" if hard else ("soft" if hard is not None else NA)
        rows.append([_e(g.get("gate")), _e(g.get("value")), _e(g.get("threshold")), kind,
                     _verdict(g.get("passed"))])
        classes.append("fail" if g.get("passed") is False else "")
    n_fail = sum(c == "fail" for c in classes)
    return (f"<p>{len(gates) - n_fail} of {len(gates)} gates passed</p>"
            + _table(["gate", "value", "threshold", "kind", "result"], rows, classes))


def _components(doc: dict[str, Any], go: Any) -> str:
    comps = {str(k): v for k, v in _dict(doc.get("components")).items() if isinstance(v, dict)}
    if not comps:
        return _na("no score components")
    names = list(comps)[::-1]  # plotly draws the first category at the bottom
    pts = [_num(comps[k].get("points")) for k in names]
    mx = [_num(comps[k].get("max_points")) for k in names]
    vals = [_fmt(comps[k].get("value")) for k in names]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=names, x=mx, orientation="h", name="max points", marker={"color": "#dddddd"}))
    fig.add_trace(go.Bar(y=names, x=pts, orientation="h", name="points", marker={"color": _BLUE},
                         customdata=vals,
                         hovertemplate="%{y}: %{x} points (value %{customdata})<extra></extra>"))
    fig.update_layout(title="score composition (points vs max points)", barmode="overlay",
                      xaxis_title="points", height=120 + 30 * len(names))
    return _fig_html(fig)


def _stats(doc: dict[str, Any]) -> str:
    stats = _dict(doc.get("stats"))
    if not stats:
        return _na("no statistics")
    rows = []
    for name, s in stats.items():
        if isinstance(s, dict):
            inputs = ", ".join(f"{k}={_fmt(v)}" for k, v in s.items() if k != "value")
            rows.append([_e(name), _e(s.get("value")), html.escape(inputs)])
        else:
            rows.append([_e(name), _e(s), ""])
    return _table(["statistic", "value", "inputs"], rows)


def _equity(equity: pd.DataFrame | None, go: Any) -> str:
    ok = isinstance(equity, pd.DataFrame) and {"ts", "equity"} <= set(equity.columns)
    df = equity[["ts", "equity"]].dropna().sort_values("ts") if ok and equity is not None else pd.DataFrame()
    if df.empty:
        return "<p class='na'>no trades</p>"
    x = pd.to_datetime(df["ts"].astype("int64"), unit="ms", utc=True)
    eq = df["equity"].astype(float).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.nan_to_num(1.0 - eq / np.maximum.accumulate(eq), nan=0.0, posinf=0.0, neginf=0.0)
    eq_fig = go.Figure(go.Scatter(x=x, y=eq, mode="lines", name="equity", line={"color": _BLUE}))
    eq_fig.update_layout(title="out-of-sample CV equity", yaxis_title="equity", height=320,
                         margin={"t": 40, "b": 30})
    dd_fig = go.Figure(go.Scatter(x=x, y=-100.0 * dd, mode="lines", fill="tozeroy", name="drawdown",
                                  line={"color": _RED}))
    dd_fig.update_layout(title="drawdown", yaxis_title="drawdown (%)", height=240, margin={"t": 40, "b": 30})
    summary = (f"<p>final equity {_e(float(eq[-1]))}, max drawdown {_pct(float(dd.max()))}, "
               f"{len(eq)} days</p>")
    return summary + _fig_html(eq_fig) + _fig_html(dd_fig)


def _monte_carlo(doc: dict[str, Any], mc_drawdowns: Any, go: Any) -> str:
    mc = _dict(doc.get("monte_carlo"))
    parts: list[str] = []
    rows = [[html.escape(str(m)), _pct(_get(r, "max_drawdown", "p50")), _pct(_get(r, "max_drawdown", "p95")),
             _pct(_get(r, "max_drawdown", "p99")), _pct(r.get("prob_ruin")), _pct(r.get("prob_loss")),
             _pct(_get(r, "final_return", "p5")), _pct(_get(r, "final_return", "p50")),
             _pct(_get(r, "final_return", "p95")), _e(r.get("n_paths")), _e(r.get("n_trades"))]
            for m, r in mc.items() if isinstance(r, dict)]
    if rows:
        parts.append(_table(["method", "MDD p50", "MDD p95", "MDD p99", "P(ruin)", "P(loss)", "final ret p5",
                             "final ret p50", "final ret p95", "paths", "trades"], rows))
    try:
        arr = np.asarray(mc_drawdowns, dtype=float).ravel() if mc_drawdowns is not None else np.array([])
    except (TypeError, ValueError):
        arr = np.array([])
    arr = arr[np.isfinite(arr)]
    if arr.size:
        p95, p99 = (float(q) for q in np.quantile(arr, [0.95, 0.99]))
        fig = go.Figure(go.Histogram(x=100.0 * arr, nbinsx=50, marker={"color": _BLUE}, name="max drawdown"))
        for q, label, dash in ((p95, "p95", "dash"), (p99, "p99", "dot")):
            fig.add_vline(x=100.0 * q, line={"color": _RED, "dash": dash},
                          annotation_text=f"{label} {100.0 * q:.1f}%", annotation_position="top right")
        fig.update_layout(title=f"simulated max drawdown ({arr.size} paths)", xaxis_title="max drawdown (%)",
                          yaxis_title="paths", height=340, showlegend=False)
        parts.append(f"<p>simulated max drawdown p95 {_pct(p95)}, p99 {_pct(p99)}</p>" + _fig_html(fig))
    return "\n".join(parts) if parts else _na("no Monte Carlo results")


def _folds(doc: dict[str, Any], go: Any) -> str:
    folds = [f for f in _list(doc.get("folds")) if isinstance(f, dict)]
    if not folds:
        return _na("no folds")
    labels = [f"fold {_fmt(f.get('fold'))}" for f in folds]
    rets = [None if (r := _num(f.get("return"))) is None else 100.0 * r for f in folds]
    fig = go.Figure(go.Bar(x=labels, y=rets, marker={"color": _sign_colors(rets)},
                           customdata=[_fmt(f.get("trades")) for f in folds],
                           hovertemplate="%{x}: %{y:.2f}% (%{customdata} trades)<extra></extra>"))
    fig.update_layout(title="return per CV fold", yaxis_title="return (%)", height=320)
    rows = [[_e(f.get("fold")), _e(f.get("start")), _e(f.get("end")), _e(f.get("trades")),
             _e(f.get("net_bps")), _e(f.get("sharpe_daily")), _pct(f.get("return"))] for f in folds]
    return _fig_html(fig) + _table(["fold", "start", "end", "trades", "net bps", "Sharpe (daily)", "return"],
                                   rows)


def _exit_reasons(doc: dict[str, Any], go: Any) -> str:
    counts = {str(k): _num(v) for k, v in _dict(doc.get("exit_reasons")).items()}
    if not counts:
        return _na("no exits")
    names = sorted(counts, key=lambda k: -(counts[k] or 0.0))
    fig = go.Figure(go.Bar(x=names, y=[counts[k] for k in names], marker={"color": _BLUE},
                           text=[_fmt(counts[k]) for k in names], textposition="auto"))
    fig.update_layout(title="exit reasons", yaxis_title="trades", height=300)
    return _fig_html(fig)


def _regimes(doc: dict[str, Any], go: Any) -> str:
    regs = [r for r in _list(doc.get("regimes")) if isinstance(r, dict)]
    if not regs:
        return _na("no regime breakdown")
    names = [_fmt(r.get("bucket")) for r in regs]
    ys = [_num(r.get("net_bps")) for r in regs]
    custom = [[_fmt(r.get("trades")), _pct(r.get("win_rate"), 1)] for r in regs]
    fig = go.Figure(go.Bar(x=names, y=ys, marker={"color": _sign_colors(ys)}, customdata=custom,
                           text=[f"n={c[0]}" for c in custom], textposition="auto",
                           hovertemplate="%{x}: %{y:.1f} bps, %{customdata[0]} trades, "
                                         "win rate %{customdata[1]}<extra></extra>"))
    fig.update_layout(title="net bps per trade by regime bucket", yaxis_title="net bps per trade", height=320)
    return _fig_html(fig)


def _calibration(calibration: pd.DataFrame | None, go: Any) -> str:
    ok = isinstance(calibration, pd.DataFrame) and {"predicted", "observed"} <= set(calibration.columns)
    df = (calibration.dropna(subset=["predicted", "observed"]) if ok and calibration is not None
          else pd.DataFrame())
    if df.empty:
        return _na("no calibration data")
    n = df["n"].tolist() if "n" in df.columns else [None] * len(df)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line={"color": _GREY, "dash": "dash"}))
    fig.add_trace(go.Scatter(x=df["predicted"].astype(float), y=df["observed"].astype(float),
                             mode="lines+markers", name="model", line={"color": _BLUE},
                             customdata=[_fmt(v) for v in n],
                             hovertemplate="predicted %{x:.3f}, observed %{y:.3f}, n=%{customdata}"
                                           "<extra></extra>"))
    fig.update_layout(title="calibration (observed frequency vs mean predicted probability)",
                      xaxis={"title": "predicted", "range": [0, 1]},
                      yaxis={"title": "observed", "range": [0, 1]}, height=380, width=520)
    return _fig_html(fig)


def _holdout(doc: dict[str, Any]) -> str:
    h = doc.get("holdout")
    if not isinstance(h, dict):
        return _na("no holdout")
    return (f"<p>holdout: {_verdict(h.get('passed'))}</p>"
            + _table(["total return", "Sharpe (ann.)", "trades", "stop-loss share"],
                     [[_pct(h.get("total_return")), _e(h.get("sharpe_annual")), _e(h.get("trades")),
                       _pct(h.get("stop_loss_share"), 1)]]))


def _stability(doc: dict[str, Any]) -> str:
    s = doc.get("stability")
    if not isinstance(s, dict):
        return _na("no stability check")
    return (f"<p>stability {_pct(s.get('value'), 1)}: share of {_e(s.get('neighbours'))} parameter "
            f"neighbours (radius {_e(s.get('radius'))}) within tolerance {_e(s.get('tolerance'))} "
            "of the chosen objective</p>")


# ---------------------------------------- pages


def _page(title: str, body: str, head_extra: str = "") -> str:
    return (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"{head_extra}<style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def robustness_html(coin: str, doc: dict[str, Any], equity: pd.DataFrame, mc_drawdowns: np.ndarray,
                    calibration: pd.DataFrame, plotly_src: str = "../plotly.min.js") -> str:
    """The coin's robustness page. ``doc``: robustness.json (every key optional); ``equity``: ts (epoch
    ms) and equity of the chosen candidate's out-of-sample CV track; ``mc_drawdowns``: simulated max
    drawdowns (fractions); ``calibration``: predicted, observed, n per probability bin."""
    import plotly.graph_objects as go

    doc = _dict(doc)
    tier = doc.get("tier")
    score = _num(doc.get("score"))
    head = (f"<h1>{html.escape(coin)} — robustness tier {_badge(tier)}</h1>"
            f"<p class='meta'>score <b>{NA if score is None else f'{score:.1f}'}</b> / 100 · cohort "
            f"{_e(doc.get('cohort'))} · mode {_e(doc.get('mode'))}</p>")
    sections = [("gates", "gates", _gates(doc)), ("components", "score composition", _components(doc, go)),
                ("stats", "statistics", _stats(doc)), ("equity", "equity & drawdown", _equity(equity, go)),
                ("monte-carlo", "Monte Carlo", _monte_carlo(doc, mc_drawdowns, go)),
                ("folds", "folds", _folds(doc, go)), ("exit-reasons", "exit reasons", _exit_reasons(doc, go)),
                ("regimes", "regimes", _regimes(doc, go)),
                ("calibration", "calibration", _calibration(calibration, go)),
                ("holdout", "holdout", _holdout(doc)), ("stability", "stability", _stability(doc))]
    body = head + "\n" + "\n".join(_section(*s) for s in sections)
    return _page(f"{coin} robustness", body, f"<script src='{html.escape(plotly_src)}'></script>")


def index_html(rows: list[dict[str, Any]], portfolio: dict[str, Any] | None = None,
               title: str = "robustness") -> str:
    """The cohort index: one row per coin (coin, tier, score, failed_gates, href) and, when given, the
    portfolio verdict (passed, basket, dropped [{coin, reason}], conditions [{condition, value, threshold,
    passed}])."""
    table_rows = []
    for r in (r for r in rows if isinstance(r, dict)):
        coin, href = _e(r.get("coin")), r.get("href")
        link = f"<a href='{html.escape(str(href))}'>{coin}</a>" if href else coin
        failed = [str(g) for g in _list(r.get("failed_gates"))]
        table_rows.append([link, _badge(r.get("tier")), _e(r.get("score")),
                           html.escape(", ".join(failed)) if failed else "—"])
    parts = [f"<h1>{html.escape(title)}</h1>",
             _section("coins", "coins", _table(["coin", "tier", "score", "failed gates"], table_rows)
                      if table_rows else _na("no coins"))]
    if isinstance(portfolio, dict):
        basket = [str(c) for c in _list(portfolio.get("basket"))]
        body = [f"<p>portfolio verdict: {_verdict(portfolio.get('passed'))}</p>",
                f"<p>basket ({len(basket)}): {html.escape(', '.join(basket)) if basket else NA}</p>"]
        dropped = [d for d in _list(portfolio.get("dropped")) if isinstance(d, dict)]
        if dropped:
            body.append("<h3>dropped</h3>" + _table(
                ["coin", "reason"], [[_e(d.get("coin")), _e(d.get("reason"))] for d in dropped]))
        conds = [c for c in _list(portfolio.get("conditions")) if isinstance(c, dict)]
        if conds:
            body.append("<h3>conditions</h3>" + _table(
                ["condition", "value", "threshold", "result"],
                [[_e(c.get("condition")), _e(c.get("value")), _e(c.get("threshold")),
                  _verdict(c.get("passed"))] for c in conds],
                ["fail" if c.get("passed") is False else "" for c in conds]))
        parts.append(_section("portfolio", "portfolio", "\n".join(body)))
    return _page(title, "\n".join(parts))
