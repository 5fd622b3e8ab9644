"""Out-of-sample predictions cached per (coin, data fingerprint, label params, model params, fold).

Trials that differ only in entry, exit or filter parameters reuse the cached predictions and never retrain. The
cache lives in memory and, with a directory, on disk (one parquet file per key, written to a temporary name and
renamed: concurrent workers never read a half-written file, and a resumed launch starts warm).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["PredictionCache", "cache_key"]

COLUMNS = ["ts", "p_dir", "p_up", "p_down"]


def cache_key(coin: str, data_fingerprint: str, label: Any, model: Any, walk_forward: Any, fold: Any,
              features: list[str]) -> str:
    """sha256 of everything a fold's predictions depend on (dataclasses by value)."""
    payload = {"coin": coin, "data": data_fingerprint, "label": asdict(label), "model": asdict(model),
               "walk_forward": asdict(walk_forward), "fold": asdict(fold), "features": list(features)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class PredictionCache:
    directory: Path | None = None
    hits: int = 0
    misses: int = 0
    _mem: dict[str, pd.DataFrame] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_or_compute(self, key: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        with self._lock:
            hit = self._mem.get(key)
        if hit is not None:
            self.hits += 1
            return hit
        path = self.directory / f"{key}.parquet" if self.directory is not None else None
        if path is not None and path.exists():
            df = pd.read_parquet(path)
            self.hits += 1
        else:
            df = compute()[COLUMNS].reset_index(drop=True)
            self.misses += 1
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                df.to_parquet(tmp, index=False)
                os.replace(tmp, path)
        with self._lock:
            self._mem[key] = df
        return df

    def stats(self) -> dict[str, Any]:
        n = self.hits + self.misses
        return {"hits": self.hits, "misses": self.misses, "hit_rate": self.hits / n if n else float("nan")}
