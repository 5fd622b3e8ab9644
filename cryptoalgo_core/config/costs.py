"""config/costs.yaml: fee schedules per venue (bps of notional per fill), by 30-day USD volume tier."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptoalgo_core.config.io import build_dataclass, read_yaml
from cryptoalgo_core.errors import ConfigError

__all__ = ["VENUE_KINDS", "FeeTier", "Venue", "load_venues", "tier_for_volume"]

VENUE_KINDS = ("spot", "perp")


@dataclass(frozen=True)
class FeeTier:
    min_volume_usd: float  # the tier's lower bound of rolling 30-day USD volume
    maker_bps: float
    taker_bps: float

    def __post_init__(self) -> None:
        if min(self.min_volume_usd, self.maker_bps, self.taker_bps) < 0:
            raise ValueError("values must be numbers >= 0")


@dataclass(frozen=True)
class Venue:
    kind: str  # spot | perp
    tiers: dict[str, FeeTier]

    def __post_init__(self) -> None:
        if self.kind not in VENUE_KINDS:
            raise ValueError(f"kind must be one of {list(VENUE_KINDS)}, got {self.kind!r}")


@dataclass(frozen=True)
class _CostsFile:
    venues: dict[str, Venue] = field(default_factory=dict)


def load_venues(path: Path) -> dict[str, Venue]:
    """Venue name -> fee schedule, from costs.yaml at ``path``."""
    venues = build_dataclass(_CostsFile, read_yaml(path), str(path)).venues
    if not venues:
        raise ConfigError(f"{path}: 'venues' must be a non-empty mapping")
    return venues


def tier_for_volume(venue: Venue, volume_usd: float) -> str:
    """The fee tier a 30-day USD volume falls in."""
    rows = sorted(venue.tiers.items(), key=lambda kv: kv[1].min_volume_usd)
    name = rows[0][0]
    for t, row in rows:
        if volume_usd >= row.min_volume_usd:
            name = t
    return name
