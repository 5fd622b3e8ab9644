"""The embedded default source: the deterministic synthetic market of cryptoalgo_core.synthetic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cryptoalgo_core import synthetic
from cryptoalgo_core.errors import ConfigError
from resources.sources.base import FatalSourceError


class SyntheticSource:
    name = "synthetic"

    def __init__(self, config_path: str | Path | None = None) -> None:
        self.cfg = synthetic.load_synthetic_config(Path(config_path) if config_path else None)

    def now_ms(self) -> int:
        """The synthetic calendar's end: a fixed date, so every run and machine sees the same market."""
        return synthetic.calendar_bounds(self.cfg)[1]

    def _series(self, symbol: str, start_ms: int, end_ms: int) -> synthetic.SyntheticSeries:
        try:
            return synthetic.generate(self.cfg, [symbol], start_ms, end_ms)[symbol]
        except ConfigError as exc:
            raise FatalSourceError(f"synthetic: {exc}") from exc

    def fetch_ohlcv(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        return self._series(symbol, start_ms, end_ms).ohlcv

    def fetch_funding(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        return self._series(symbol, start_ms, end_ms).funding

    def fetch_open_interest(self, symbol: str, start_ms: int, end_ms: int) -> pd.DataFrame:
        oi = self._series(symbol, start_ms, end_ms).open_interest
        if "unit" not in oi.columns:
            oi = oi.assign(unit="usd")
        return oi
