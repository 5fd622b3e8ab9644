"""build_dataclass: the one mechanism that turns YAML sections into frozen dataclasses."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cryptoalgo_core.config import ConfigError, build_dataclass, deep_merge, derived, read_yaml


@dataclass(frozen=True)
class Leaf:
    n: int = 1
    x: float = 0.5
    flag: bool = False
    name: str = "a"
    tags: tuple[str, ...] = ()
    note: str | None = None
    resolved: float = derived(0.0)

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError("n must be >= 0")


@dataclass(frozen=True)
class Tier:
    lo: float
    hi: float


@dataclass(frozen=True)
class Root:
    leaf: Leaf = field(default_factory=Leaf)
    tiers: dict[str, Tier] = field(default_factory=dict)
    day: str = "2020-01-01"


def _err(data: object, where: str = "f.yaml") -> str:
    with pytest.raises(ConfigError) as exc:
        build_dataclass(Root, data, where)
    return str(exc.value)


def test_defaults_nesting_and_conversions() -> None:
    assert build_dataclass(Root, None, "f.yaml") == Root()
    r = build_dataclass(
        Root,
        {"leaf": {"n": 3, "x": 2, "tags": ["p", "q"], "note": None}, "tiers": {"t1": {"lo": 0, "hi": 1.5}},
         "day": dt.date(2021, 2, 3)},
        "f.yaml",
    )
    assert r.leaf == Leaf(n=3, x=2.0, tags=("p", "q"))
    assert isinstance(r.leaf.x, float) and r.tiers == {"t1": Tier(0.0, 1.5)}
    assert r.day == "2021-02-03"  # an unquoted YAML date is read as its text
    assert build_dataclass(Leaf, {"tags": None}, "f.yaml: leaf").tags == ()  # a null list is empty


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"leef": {}}, "f.yaml: unknown key(s) ['leef']; allowed: ['day', 'leaf', 'tiers']"),
        ({"leaf": {"m": 1}}, "f.yaml: leaf: unknown key(s) ['m']"),
        ({"leaf": {"resolved": 1.0}}, "f.yaml: leaf: unknown key(s) ['resolved']"),  # derived: not a key
        ({"leaf": {"n": 1.5}}, "f.yaml: leaf.n: expected an integer, got 1.5"),
        ({"leaf": {"n": True}}, "f.yaml: leaf.n: expected an integer, got True"),
        ({"leaf": {"x": "fast"}}, "f.yaml: leaf.x: expected a number, got 'fast'"),
        ({"leaf": {"x": float("nan")}}, "f.yaml: leaf.x: expected a finite number, got nan"),
        ({"leaf": {"flag": 1}}, "f.yaml: leaf.flag: expected true/false, got 1"),
        ({"leaf": {"name": 5}}, "f.yaml: leaf.name: expected a string, got 5"),
        ({"leaf": {"name": None}}, "f.yaml: leaf.name: expected a string, got None"),
        ({"leaf": {"tags": "p"}}, "f.yaml: leaf.tags: expected a list, got 'p'"),
        ({"leaf": {"tags": ["p", 3]}}, "f.yaml: leaf.tags[1]: expected a string, got 3"),
        ({"leaf": {"n": -1}}, "f.yaml: leaf: n must be >= 0"),
        ({"leaf": [1]}, "f.yaml: leaf: expected a mapping, got list"),
        ({"tiers": {"t1": {"lo": 0}}}, "f.yaml: tiers.t1: missing key(s) ['hi']"),
        ({"tiers": {"t1": {"lo": 0, "hi": "x"}}}, "f.yaml: tiers.t1.hi: expected a number, got 'x'"),
        ({"tiers": {1: {"lo": 0, "hi": 1}}}, "f.yaml: tiers: keys must be strings, got ['1']"),
    ],
)
def test_errors_name_file_key_and_problem(data: object, message: str) -> None:
    assert message in _err(data)


def test_location_below_a_section_uses_dots() -> None:
    assert "f.yaml: coins.ETH.leaf.n: expected an integer" in _err({"leaf": {"n": "x"}}, "f.yaml: coins.ETH")


def test_read_yaml_and_deep_merge(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("")
    assert read_yaml(p) == {}
    p.write_text("- 1")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        read_yaml(p)
    base = {"a": {"x": 1, "y": 2}, "b": 1}
    assert deep_merge(base, {"a": {"y": 3}, "c": 4}) == {"a": {"x": 1, "y": 3}, "b": 1, "c": 4}
    assert base == {"a": {"x": 1, "y": 2}, "b": 1}
