"""Reading the YAML files in config/ and THE mechanism that turns their sections into frozen dataclasses.

Every loader in :mod:`cryptoalgo_core.config` (and :mod:`cryptoalgo_core.synthetic.config`) reads a file with
:func:`read_yaml` and parses each section with :func:`build_dataclass`; cross-field rules live in the
dataclasses' ``__post_init__`` (a ``ValueError`` there becomes a :class:`ConfigError` naming the section) or in
the loader. Errors name the file, the key and the problem; unknown keys are errors (a typo must never silently
fall back to a default).

This module is deliberately light (``yaml`` and the standard library only): importing the configuration must
not pull in numpy, pandas or numba.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from cryptoalgo_core.errors import ConfigError

__all__ = ["FROM_YAML", "build_dataclass", "config_dir", "deep_merge", "derived", "read_yaml"]

T = TypeVar("T")

#: dataclass field metadata key; ``False`` marks a field the loader fills in (not settable from YAML)
FROM_YAML = "from_yaml"


def config_dir() -> Path:
    """CRYPTOALGO_CONFIG_DIR, else the repository's config/ next to the packages."""
    env = os.environ.get("CRYPTOALGO_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "config"


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping ({} for an empty file); ConfigError if missing, malformed or not a mapping."""
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: malformed YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``; nested mappings merge key by key (inputs are not modified)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def derived(default: Any) -> Any:
    """A dataclass field the loader resolves (e.g. fees from costs.yaml): not a YAML key."""
    return dataclasses.field(default=default, metadata={FROM_YAML: False})


def _at(where: str, key: object) -> str:
    """Location of ``key`` inside ``where``: ``file: key`` at the top of a file, ``...section.key`` below it."""
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


@functools.cache
def _fields(cls: type) -> tuple[dict[str, Any], frozenset[str]]:
    """YAML-settable fields of a dataclass -> resolved type, and the names of the required ones."""
    hints = typing.get_type_hints(cls)
    settable: dict[str, Any] = {}
    required = set()
    for f in dataclasses.fields(cls):
        if not f.metadata.get(FROM_YAML, True):
            continue
        settable[f.name] = hints[f.name]
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.add(f.name)
    return settable, frozenset(required)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked against (and converted to) the annotation ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        inner = [a for a in args if a is not type(None)]
        if value is None and len(inner) < len(args):
            return None
        tp = inner[0] if len(inner) == 1 else Any
        origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return build_dataclass(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float range
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, dt.date):  # YAML reads an unquoted 2020-01-01 as a date
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is tuple:
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        kt, vt = args if args else (Any, Any)
        if kt is str and not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: keys must be strings, got {sorted(map(repr, value))}")
        return {k: _convert(vt, v, _at(where, k)) for k, v in value.items()}
    return value  # Any, or a type without a YAML rule


def build_dataclass(cls: type[T], data: Any, where: str) -> T:
    """Construct the dataclass ``cls`` from a YAML mapping (``None`` = all defaults).

    Rules, by field annotation: ``bool`` needs true/false, ``int`` an integer (not a bool), ``float`` a finite
    number (ints are converted), ``str`` a string (a YAML date is read as its ``YYYY-MM-DD`` text), ``X | None``
    also accepts null, ``tuple[X, ...]`` a list, ``dict[K, V]`` a mapping, a dataclass a nested mapping (parsed
    by this same function); null is an empty list / mapping and an all-defaults section, and an error for a
    scalar; anything else is passed through. Fields marked with :func:`derived` are not keys.
    Unknown keys, missing required keys, a wrong type or a ``ValueError``/``TypeError`` from the constructor
    raise :class:`ConfigError` naming ``where`` (``"<file>: <section>"``) and the key.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    known, required = _fields(typing.cast(type, cls))
    unknown = sorted(str(k) for k in set(data) - set(known))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    missing = sorted(required - set(data))
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    kwargs = {name: _convert(known[name], value, _at(where, name)) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
