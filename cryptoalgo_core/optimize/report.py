"""The per-coin optimization report (plotly, no I/O): optimization history, parameter importances, the chosen
candidate's fold results and the holdout candidates. The page loads plotly.js from ``plotly_src`` (the caller
writes :func:`plotly_js` once per cohort directory), so each coin's page stays small and works offline."""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["optimization_html", "parameter_importances", "plotly_js"]


def plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def parameter_importances(study: Any) -> dict[str, float]:
    """fANOVA importances of the study's parameters over its complete trials ({} when they cannot be computed:
    fewer than two complete trials or no parameter that varies)."""
    import optuna

    try:
        ev = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return {k: float(v) for k, v in optuna.importance.get_param_importances(study, evaluator=ev).items()}
    except (ValueError, RuntimeError, ZeroDivisionError):
        return {}


def _fig_html(fig: Any) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False))


def optimization_html(coin: str, opt: dict[str, Any], trials: list[dict[str, Any]], holdout: dict[str, Any] | None,
                      plotly_src: str = "../plotly.min.js") -> str:
    """``opt``: optimized_profile.json; ``trials``: rows with number, state, objective; ``holdout``: holdout.json."""
    import plotly.graph_objects as go

    parts = [f"<h1>{html.escape(coin)} — optimization ({html.escape(str(opt.get('study', '')))})</h1>",
             f"<p>preset {html.escape(opt['preset']['name'])}, tier {opt['preset']['tier']}, trials "
             f"{opt['trial_counts']['trials']} ({opt['trial_counts']['pruned']} pruned), chosen trial "
             f"{opt['chosen_trial']} with objective {opt['objective']:.3f} (chosen before the holdout was read)</p>"]
    rows = sorted(trials, key=lambda r: r["number"])
    done = [r for r in rows if r["state"] == "COMPLETE" and _finite(r["objective"])]
    best, best_y = -math.inf, []
    for r in done:
        best = max(best, r["objective"])
        best_y.append(best)
    hist = go.Figure()
    hist.add_trace(go.Scatter(x=[r["number"] for r in done], y=[r["objective"] for r in done], mode="markers",
                              name="complete", marker={"size": 5, "color": "#1f5fbf"}))
    pr = [r for r in rows if r["state"] == "PRUNED"]
    hist.add_trace(go.Scatter(x=[r["number"] for r in pr], y=[r["objective"] if _finite(r["objective"]) else None
                                                               for r in pr],
                              mode="markers", name="pruned", marker={"size": 4, "color": "#bbbbbb"}))
    hist.add_trace(go.Scatter(x=[r["number"] for r in done], y=best_y, mode="lines", name="best so far",
                              line={"color": "#bf1f1f"}))
    hist.update_layout(title="optimization history (objective, bps per trade)", xaxis_title="trial",
                       yaxis_title="objective", height=380)
    parts.append(_fig_html(hist))
    imp = opt.get("importances") or {}
    if imp:
        names = sorted(imp, key=lambda k: imp[k])
        bar = go.Figure(go.Bar(x=[imp[k] for k in names], y=names, orientation="h", marker={"color": "#1f5fbf"}))
        bar.update_layout(title="parameter importances (fANOVA over complete trials)", height=60 + 28 * len(names))
        parts.append(_fig_html(bar))
    else:
        parts.append("<p>parameter importances: not available (too few complete trials)</p>")
    folds = (opt.get("terms") or {}).get("folds") or []
    if folds:
        ff = go.Figure()
        ff.add_trace(go.Bar(x=[f"fold {f['fold']}" for f in folds], y=[f["net_bps"] for f in folds],
                            name="net bps per trade", marker={"color": ["#2a8a2a" if f["net_bps"] > 0 else "#bf1f1f"
                                                                          for f in folds]}))
        ff.add_trace(go.Scatter(x=[f"fold {f['fold']}" for f in folds], y=[f["trades"] for f in folds], yaxis="y2",
                                name="trades", mode="lines+markers", line={"color": "#555"}))
        ff.update_layout(title="chosen candidate per CV fold", yaxis_title="net bps per trade", height=360,
                         yaxis2={"title": "trades", "overlaying": "y", "side": "right"})
        parts.append(_fig_html(ff))
    terms = (opt.get("terms") or {}).get("terms") or {}
    parts.append("<h2>objective terms of the chosen trial</h2><table>" + "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in terms.items()) + "</table>")
    parts.append("<h2>chosen parameters</h2><table>" + "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>" for k, v in opt["params"].items())
        + "</table>")
    if holdout:
        head = ("<tr><th>candidate</th><th>return</th><th>Sharpe (ann.)</th><th>trades</th><th>SL share</th>"
                "<th>fee/edge</th><th>net bps</th></tr>")
        body = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{_fmt(r['total_return'])}</td><td>{_fmt(r['sharpe_annual'])}</td>"
            f"<td>{r['trades']}</td><td>{_fmt(r['stop_loss_share'])}</td><td>{_fmt(r['fee_edge_ratio'])}</td>"
            f"<td>{_fmt(r['net_bps'])}</td></tr>"
            for name, r in [("baseline (coins.yaml)", holdout["baseline"]),
                            *((f"trial {c['number']}" + (" (chosen)" if i == 0 else ""), c)
                              for i, c in enumerate(holdout["candidates"]))])
        g = holdout["gate"]
        parts.append(f"<h2>holdout ({holdout['days']:.0f} days, read once)</h2><table>{head}{body}</table>"
                     f"<p>holdout gate: <b>{'PASS' if g['passed'] else 'FAIL'}</b> — {html.escape(g['description'])}"
                     "</p>")
    style = ("body{font-family:sans-serif;margin:24px;max-width:1000px} table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} td:first-child{text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(coin)} optimization</title>"
            f"<script src='{html.escape(plotly_src)}'></script><style>{style}</style></head><body>"
            + "\n".join(parts) + "</body></html>")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else "n/a"
    return str(v)
