"""The robustness report page and the cohort index: content, sections, figure count, escaping, missing data and
well-formed structure."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cryptoalgo_core.robustness.html import index_html, robustness_html

PLOTLY_DIV = 'class="plotly-graph-div"'
SECTIONS = ["gates", "score composition", "statistics", "equity &amp; drawdown", "Monte Carlo", "folds",
            "exit reasons", "regimes", "calibration", "holdout", "stability"]
STRUCTURAL = {"html", "head", "body", "table", "thead", "tbody", "tr", "td", "th", "section", "div", "p", "h1",
              "h2", "h3", "a", "span", "script", "style"}
DAY_MS = 86_400_000


class _TagStack(HTMLParser):
    """Records every structural tag that is closed out of order or never closed."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.seen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in STRUCTURAL:
            self.stack.append(tag)
            self.seen.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in STRUCTURAL:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _visible_text(page: str) -> str:
    """The page's text outside scripts and styles (what a reader sees, figures aside)."""
    t = _Text()
    t.feed(page)
    return " ".join(t.parts)


def _check_balanced(page: str, must_see: set[str]) -> None:
    p = _TagStack()
    p.feed(page)
    p.close()
    assert p.errors == []
    assert p.stack == []
    assert must_see <= p.seen


def _doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "cohort": "majors-2024", "mode": "full", "score": 61.25, "tier": "PAPER",
        "gates": [
            {"gate": "dsr", "value": 0.97, "threshold": ">= 0.95", "passed": True, "hard": True},
            {"gate": "pbo", "value": 0.62, "threshold": "<= 0.5", "passed": False, "hard": True},
            {"gate": "min_trl", "value": 410, "threshold": "<= n_obs (245)", "passed": False, "hard": False},
            {"gate": "holdout", "value": None, "threshold": "return > 0", "passed": True, "hard": False},
        ],
        "components": {
            "dsr": {"value": 0.97, "points": 25.0, "max_points": 25.0},
            "pbo": {"value": 0.62, "points": 4.5, "max_points": 20.0},
            "mc_drawdown": {"value": 0.18, "points": 12.0, "max_points": 20.0},
            "stability": {"value": 0.8, "points": 19.75, "max_points": 35.0},
        },
        "stats": {
            "psr": {"value": 0.93, "sr": 0.08, "sr_star": 0.0, "n_obs": 245, "skew": -0.3, "kurtosis": 5.1},
            "dsr": {"value": 0.97, "sr": 0.123456, "sr_star": 0.0412, "n_trials": 120, "n_obs": 245},
            "pbo": {"value": 0.62, "n_splits": 16, "n_combinations": 12870},
            "min_trl": {"value": 410.0, "sr": 0.08, "sr_star": 0.0, "alpha": 0.05},
        },
        "monte_carlo": {
            "bootstrap": {"max_drawdown": {"p50": 0.11, "p95": 0.21, "p99": 0.27}, "prob_ruin": 0.004,
                          "prob_loss": 0.12, "final_return": {"p5": -0.05, "p50": 0.18, "p95": 0.44},
                          "n_paths": 5000, "n_trades": 183},
            "reshuffle": {"max_drawdown": {"p50": 0.10, "p95": 0.19, "p99": 0.24}, "prob_ruin": 0.0,
                          "prob_loss": 0.0, "final_return": {"p5": 0.2, "p50": 0.2, "p95": 0.2},
                          "n_paths": 5000, "n_trades": 183},
        },
        "folds": [
            {"fold": i, "start": f"2023-0{i + 1}-01T00:00:00+00:00", "end": f"2023-0{i + 2}-01T00:00:00+00:00",
             "trades": 30 + i, "net_bps": nb, "sharpe_daily": sd, "return": r}
            for i, (nb, sd, r) in enumerate([(12.5, 0.11, 0.041), (-3.2, -0.02, -0.012), (8.0, 0.07, 0.025)])
        ],
        "exit_reasons": {"take_profit": 80, "stop_loss": 61, "timeout": 42},
        "regimes": [
            {"bucket": "trend=up", "trades": 90, "net_bps": 14.0, "win_rate": 0.56},
            {"bucket": "trend=down", "trades": 93, "net_bps": -2.5, "win_rate": 0.47},
            {"bucket": "vol=high", "trades": 70, "net_bps": 9.1, "win_rate": 0.52},
        ],
        "holdout": {"total_return": 0.034, "sharpe_annual": 1.21, "trades": 41, "stop_loss_share": 0.32,
                    "passed": True},
        "stability": {"value": 0.8, "neighbours": 20, "radius": 0.1, "tolerance": 0.25},
    }
    doc.update(over)
    return doc


def _equity(values: list[float] | None = None) -> pd.DataFrame:
    vals = values if values is not None else list(1.0 + 0.002 * np.cumsum(np.sin(np.arange(120) / 5.0)))
    return pd.DataFrame({"ts": [1_672_531_200_000 + i * DAY_MS for i in range(len(vals))], "equity": vals})


def _calibration() -> pd.DataFrame:
    return pd.DataFrame({"predicted": [0.15, 0.35, 0.55, 0.75], "observed": [0.12, 0.38, 0.5, 0.81],
                         "n": [40, 80, 60, 20]})


def _mc() -> np.ndarray:
    return np.random.default_rng(0).beta(2.0, 12.0, size=2000)


def _page(doc: dict[str, Any] | None = None, **kw: Any) -> str:
    args: dict[str, Any] = {"equity": _equity(), "mc_drawdowns": _mc(), "calibration": _calibration()}
    args.update(kw)
    return robustness_html("ETH", _doc() if doc is None else doc, **args)


# ------------------------------------------------------------------------------------------ coin page


def test_full_page_content_and_sections_in_order() -> None:
    page = _page(plotly_src="../js/plotly.min.js?v=1&x=2")
    assert "<h1>ETH" in page and "PAPER" in page and "class='badge'" in page
    assert "61.2" in page or "61.3" in page
    assert "majors-2024" in page and "full" in page
    # escaped script src in the head
    head = page[:page.index("</head>")]
    assert "<script src='../js/plotly.min.js?v=1&amp;x=2'></script>" in head
    # sections in the stated order
    pos = [page.index(f"<h2>{s}</h2>") for s in SECTIONS]
    assert pos == sorted(pos)
    _check_balanced(page, {"html", "body", "table", "section", "div"})


def test_failed_gates_are_highlighted_and_hard_gates_marked() -> None:
    page = _page()
    for g in _doc()["gates"]:
        row = f"<tr class='fail'><td>{g['gate']}</td>"
        assert (row in page) is (not g["passed"]), g["gate"]
    assert "tr.fail td{background:" in page  # the highlight is a red background
    assert page.count("<span class='hard'>hard</span>") == 2
    assert "2 of 4 gates passed" in page
    # the None gate value is n/a
    assert "<td>holdout</td><td>n/a</td>" in page


def test_one_plotly_div_per_figure() -> None:
    # components, equity, drawdown, MC histogram, folds, exit reasons, regimes, calibration
    assert _page().count(PLOTLY_DIV) == 8
    assert _page(equity=_equity([])).count(PLOTLY_DIV) == 6
    assert _page(calibration=pd.DataFrame(columns=["predicted", "observed", "n"])).count(PLOTLY_DIV) == 7
    assert _page(mc_drawdowns=np.array([])).count(PLOTLY_DIV) == 7
    assert _page(_doc(components=None, folds=[], exit_reasons={}, regimes=None)).count(PLOTLY_DIV) == 4


def test_statistics_inputs_rendered_with_four_significant_digits() -> None:
    page = _page()
    assert "sr=0.08, sr_star=0, n_obs=245, skew=-0.3, kurtosis=5.1" in page
    assert "sr=0.1235, sr_star=0.0412, n_trials=120, n_obs=245" in page
    assert "<td>pbo</td><td>0.62</td><td>n_splits=16, n_combinations=12870</td>" in page


def test_monte_carlo_table_and_quantile_lines() -> None:
    arr = _mc()
    page = _page(mc_drawdowns=arr)
    p95, p99 = np.quantile(arr, [0.95, 0.99])
    assert f"p95 {100 * p95:.2f}%, p99 {100 * p99:.2f}%" in page
    assert f"p95 {100 * p95:.1f}%" in page and f"p99 {100 * p99:.1f}%" in page  # the vline annotations
    for method in ("bootstrap", "reshuffle"):
        assert f"<td>{method}</td>" in page
    assert "<td>21.00%</td><td>27.00%</td><td>0.40%</td><td>12.00%</td>" in page


def test_equity_drawdown_summary_and_folds_table() -> None:
    page = _page(equity=_equity([1.0, 1.1, 0.99, 1.05, 1.2]))
    assert "max drawdown 10.00%" in page and "5 days" in page
    assert "<td>1</td><td>2023-02-01T00:00:00+00:00</td>" in page and "<td>-1.20%</td>" in page
    assert "n=90" in page  # regime trade counts as bar labels


def test_empty_equity_says_no_trades() -> None:
    page = _page(equity=pd.DataFrame(columns=["ts", "equity"]))
    eq = page[page.index("<h2>equity &amp; drawdown</h2>"):page.index("<h2>Monte Carlo</h2>")]
    assert "no trades" in eq and PLOTLY_DIV not in eq


def test_holdout_and_stability_text() -> None:
    page = _page()
    hold = page[page.index("<h2>holdout</h2>"):page.index("<h2>stability</h2>")]
    assert "PASS" in hold and "3.40%" in hold and "1.21" in hold and "32.0%" in hold
    assert "stability 80.0%" in page and "20 parameter neighbours" in page and "radius 0.1" in page


def test_html_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    doc = _doc(cohort=evil, tier=evil, gates=[{"gate": evil, "value": evil, "threshold": "<u>", "passed": False,
                                               "hard": True}],
               stats={"psr": {"value": 0.5, "note": evil}}, exit_reasons={evil: 3},
               regimes=[{"bucket": evil, "trades": 1, "net_bps": 1.0, "win_rate": 1.0}])
    page = robustness_html(evil, doc, _equity(), _mc(), _calibration(), plotly_src="'><script>x()</script>")
    assert evil not in page and "<u>" not in page and "<script>x()" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    _check_balanced(page, {"html", "body", "table", "section", "div"})


def test_doc_with_every_key_missing_still_renders() -> None:
    page = robustness_html("BTC", {}, pd.DataFrame(), np.array([]), pd.DataFrame())
    assert "<h1>BTC" in page and "n/a" in page and "no trades" in page
    assert PLOTLY_DIV not in page
    for s in SECTIONS:
        assert f"<h2>{s}</h2>" in page
    _check_balanced(page, {"html", "body", "section"})


@pytest.mark.parametrize("value", [None, float("nan"), float("inf")])
def test_none_and_nan_values_show_na(value: Any) -> None:
    doc: dict[str, Any] = {k: None for k in _doc()}
    doc.update(score=value, gates=[{"gate": "dsr", "value": value, "threshold": None, "passed": None,
                                    "hard": None}],
               stats={"psr": {"value": value, "sr": value}, "dsr": None},
               components={"dsr": {"value": value, "points": value, "max_points": None}},
               monte_carlo={"bootstrap": {"max_drawdown": None, "prob_ruin": value}},
               folds=[{"fold": 0, "return": value}], holdout={"passed": None},
               stability={"value": value}, regimes=[{"bucket": None}], exit_reasons={"stop_loss": value})
    page = robustness_html("SOL", doc, _equity(), np.array([np.nan, value]), _calibration())
    assert "score <b>n/a</b>" in page
    assert "<td>dsr</td><td>n/a</td><td>n/a</td><td>n/a</td>" in page
    assert "<td>psr</td><td>n/a</td><td>sr=n/a</td>" in page
    assert "stability n/a" in page
    words = set(_visible_text(page).lower().replace(",", " ").split())
    assert not words & {"nan", "nan%", "inf", "inf%", "none"}
    _check_balanced(page, {"html", "body", "table", "section", "div"})


def test_non_finite_mc_drawdowns_are_ignored() -> None:
    page = _page(mc_drawdowns=np.array([np.nan, np.inf]))
    mc = page[page.index("<h2>Monte Carlo</h2>"):page.index("<h2>folds</h2>")]
    assert PLOTLY_DIV not in mc and "<td>bootstrap</td>" in mc


# ------------------------------------------------------------------------------------------ index page


def _rows() -> list[dict[str, Any]]:
    return [
        {"coin": "ETH", "tier": "PAPER", "score": 61.25, "failed_gates": ["pbo", "min_trl"],
         "href": "ETH/robustness.html"},
        {"coin": "BTC", "tier": "FULL", "score": 88.0, "failed_gates": [], "href": "BTC/robustness.html"},
        {"coin": "DOGE", "tier": "REJECT", "score": None, "failed_gates": ["dsr"], "href": "DOGE/robustness.html"},
    ]


def _portfolio(passed: bool = False) -> dict[str, Any]:
    return {"passed": passed, "basket": ["ETH", "BTC"], "dropped": [{"coin": "DOGE", "reason": "tier REJECT"}],
            "conditions": [
                {"condition": "max_pairwise_corr", "value": 0.83, "threshold": "<= 0.7", "passed": False},
                {"condition": "basket_size", "value": 2, "threshold": ">= 2", "passed": True},
            ]}


def test_index_lists_coins_with_links_and_portfolio_verdict() -> None:
    page = index_html(_rows(), _portfolio(), title="majors-2024 robustness")
    assert "<h1>majors-2024 robustness</h1>" in page
    for r in _rows():
        assert f"<a href='{r['href']}'>{r['coin']}</a>" in page
    assert "pbo, min_trl" in page and "<td>n/a</td>" in page
    assert page.count("class='badge'") == 3
    port = page[page.index("<h2>portfolio</h2>"):]
    assert "portfolio verdict: <span class='failtxt'>FAIL</span>" in port
    assert "<tr class='fail'><td>max_pairwise_corr</td><td>0.83</td>" in port
    assert "<tr><td>basket_size</td>" in port
    assert "<td>DOGE</td><td>tier REJECT</td>" in port and "ETH, BTC" in port
    assert "plotly" not in page.lower()
    _check_balanced(page, {"html", "body", "table", "section"})


def test_index_without_portfolio_and_escaping() -> None:
    page = index_html([{"coin": "<i>X</i>", "tier": "PILOT", "score": 70.0, "failed_gates": ["<g>"],
                        "href": "x'/><script>y()</script>"}])
    assert "<h2>portfolio</h2>" not in page
    assert "<i>X</i>" not in page and "<script>" not in page and "&lt;g&gt;" in page
    assert "PASS" in index_html([], _portfolio(passed=True))
    _check_balanced(page, {"html", "body", "table", "section"})
