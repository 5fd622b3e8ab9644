"""Config validation names file/key/problem; cryptoalgo_core never imports dagster; the config import is light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from cryptoalgo_core.config import load_coins, load_gates, load_sources, resolve_coins
from cryptoalgo_core.errors import ConfigError, UnknownCoinError

CORE = Path(__file__).resolve().parents[2] / "cryptoalgo_core"


def test_core_never_imports_dagster() -> None:
    offenders = []
    for py in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{py.name}: {n}" for n in names if n.split(".")[0] in ("dagster", "dagster_webserver")]
    assert offenders == []


def test_config_import_is_light() -> None:
    """`import cryptoalgo_core.config` (done by every CLI command and resource) loads no numerical stack."""
    heavy = ("numba", "scipy", "sklearn", "xgboost", "pandas", "numpy")
    code = f"import sys, cryptoalgo_core.config; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=CORE.parent)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_default_config_loads() -> None:
    coins = load_coins()
    assert list(coins) == ["BTC", "ETH", "SOL", "XRP", "DOGE"]
    assert coins["ETH"].symbol("coinbase") == "ETH-USD"
    assert load_sources().coinbase.max_candles_per_request == 300
    assert load_gates().market_data.gap_error_hours >= load_gates().market_data.gap_warn_hours


def test_resolve_coins() -> None:
    coins = load_coins()
    assert resolve_coins("eth, btc,ETH", coins) == ["ETH", "BTC"]
    assert resolve_coins(None, coins) == list(coins)
    with pytest.raises(UnknownCoinError, match=r"unknown coin\(s\) \['LTC'\]"):
        resolve_coins("BTC,LTC", coins)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("coins: {}", "non-empty mapping"),
        ("coins:\n  btc: {symbols: {coinbase: BTC-USD}}", "coin name 'btc'"),
        ("coins:\n  BTC: {symbols: {kraken: XBT}}", "unknown source(s) ['kraken']"),
        ("coins:\n  BTC: {symbol: {coinbase: BTC-USD}}", "unknown key(s) ['symbol']"),
        ("coins: [", "malformed YAML"),
        ("- 1", "top level must be a mapping"),
    ],
)
def test_bad_coins_yaml(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "coins.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_coins(p)
    assert message in str(exc.value) and "coins.yaml" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default_source: kraken", "default_source 'kraken'"),
        ("coinbase: {max_candles_per_request: 500}", "max_candles_per_request"),
        ("coinbase: {timeout_s: fast}", "coinbase.timeout_s: expected a number"),
        ("ccxt: {oi_period: 5m}", "oi_period"),
        ("ccxt: {exchange: kraken}", "unknown key(s) ['exchange']"),
        ("calendar_start: 2020/01/01", "calendar_start"),
        ("include_oi: maybe", "include_oi: expected true/false"),
    ],
)
def test_bad_sources_yaml(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "sources.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_sources(p)
    assert message in str(exc.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_gates(tmp_path / "nope.yaml")
