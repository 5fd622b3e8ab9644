"""CLI tables agree with report.html."""

from __future__ import annotations


def test_report_html_shows_fee_edge_as_the_cli_does() -> None:
    """Without a positive gross edge the fee/edge ratio is undefined: report.html says n/a, like the CLI table."""
    from cryptoalgo_assets.cli.tables import fee_edge
    from cryptoalgo_core.backtest.html import _fmt

    assert _fmt(float("inf")) == fee_edge(float("inf")) == "n/a"
    assert _fmt(float("nan")) == "n/a"
    assert fee_edge(0.4567) == "0.46"
