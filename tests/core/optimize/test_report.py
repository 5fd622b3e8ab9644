"""The optimization report page: every section is rendered from the artifacts it is given, names are escaped."""

from __future__ import annotations

from cryptoalgo_core.optimize.report import optimization_html


def _opt() -> dict:
    return {
        "study": "c.<ETH>", "preset": {"name": "quick", "tier": 1}, "trial_counts": {"trials": 4, "pruned": 1},
        "chosen_trial": 2, "objective": 3.5, "params": {"vol_mult_sl": 1.25, "trend_states": "chop,up"},
        "importances": {"vol_mult_sl": 0.7, "long_threshold": 0.3},
        "terms": {"terms": {"objective": 3.5, "edge": 5.0}, "folds": [
            {"fold": 0, "net_bps": 4.0, "trades": 20}, {"fold": 1, "net_bps": -1.0, "trades": 18}]},
    }


def _hold() -> dict:
    m = {"total_return": 0.01, "sharpe_annual": 1.2, "trades": 30, "stop_loss_share": 0.3, "fee_edge_ratio": 0.4,
         "net_bps": 3.0}
    return {"days": 30.0, "baseline": {**m, "fee_edge_ratio": float("inf")}, "candidates": [{"number": 2, **m}],
            "gate": {"passed": True, "description": "all <conditions> pass"}}


def test_every_section_is_rendered_and_escaped() -> None:
    trials = [{"number": 0, "state": "COMPLETE", "objective": 1.0}, {"number": 1, "state": "PRUNED", "objective": -2.0},
              {"number": 2, "state": "COMPLETE", "objective": 3.5}, {"number": 3, "state": "FAIL", "objective": None}]
    page = optimization_html("ETH", _opt(), trials, _hold())
    for text in ("optimization history", "parameter importances (fANOVA", "chosen candidate per CV fold",
                 "objective terms of the chosen trial", "trial 2 (chosen)", "baseline (coins.yaml)",
                 "holdout gate: <b>PASS</b>", "../plotly.min.js"):
        assert text in page, text
    assert "c.&lt;ETH&gt;" in page and "all &lt;conditions&gt; pass" in page and "<ETH>" not in page
    assert page.count("Plotly.newPlot") == 3  # history, importances, folds


def test_without_importances_or_holdout_the_page_says_so() -> None:
    opt = {**_opt(), "importances": {}}
    page = optimization_html("SOL", opt, [{"number": 0, "state": "COMPLETE", "objective": 1.0}], None)
    assert "parameter importances: not available" in page and "holdout (" not in page
    assert page.count("Plotly.newPlot") == 2
