"""One schema mechanism for algorithm-specific settings (`algo.<key>` beyond AlgoConfig's fields).

Each algorithm and each component (a weighting, a bonus reward) declares its settings as a frozen dataclass;
a field's range or allowed values sit in its metadata (`setting(...)`). `read` turns the composed config
into that dataclass with the same one-line errors as the rest of the config; `reject_unknown` refuses keys no
declared settings class knows, so nothing is silently ignored.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

from jaxfactor.checks import check_range, check_type
from jaxfactor.config import AlgoConfig
from jaxfactor.errors import ConfigError

T = TypeVar("T")
KINDS = {str: str, bool: bool, int: int, float: float}


def setting(
    default: Any = dataclasses.MISSING,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    choices: Any = None,
) -> Any:
    """A settings field: numeric bounds (inclusive; `low_open` excludes low) or `choices` (a tuple of values, or a
    registry whose names are the allowed values). No default = the key is required."""
    return dataclasses.field(
        default=default, metadata={"setting": True, "low": low, "high": high, "low_open": low_open, "choices": choices}
    )


def _settings(cls: type) -> list[dataclasses.Field]:
    """The fields declared with `setting` (other fields are built by code, not read from the config)."""
    return [f for f in dataclasses.fields(cls) if f.metadata.get("setting")]


def _kind(hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    if args and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return KINDS[inner], True
    return KINDS[hint], False


def _allowed(choices: Any) -> list:
    return list(choices.names()) if hasattr(choices, "names") else list(choices)


def read(cls: type[T], cfg: AlgoConfig, **fixed: Any) -> T:
    """`cls` built from cfg.extra (and `fixed` for fields set by code): typed, in range, among its choices;
    absent keys take the field's default."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in _settings(cls):
        if f.name not in cfg.extra:
            if f.default is dataclasses.MISSING:
                raise ConfigError(f"algo.{f.name} is required by algo '{cfg.name}'")
            continue
        kind, nullable = _kind(hints[f.name])
        value = cfg.extra[f.name]
        if value is None and nullable:
            values[f.name] = None
            continue
        value = check_type("algo", f.name, value, kind, nullable)
        meta = f.metadata
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"algo.{f.name}={value!r} is not a finite number; allowed: a finite float")
        if kind in (int, float):
            check_range(f"algo.{f.name}", value, meta.get("low"), meta.get("high"), meta.get("low_open", False))
        if meta.get("choices") is not None and value not in _allowed(meta["choices"]):
            raise ConfigError(
                f"unknown algo.{f.name} '{value}'; allowed: {', '.join(map(str, _allowed(meta['choices'])))}"
            )
        values[f.name] = value
    return cls(**values, **fixed)


def keys(*classes: type) -> tuple[str, ...]:
    return tuple(f.name for cls in classes for f in _settings(cls))


def reject_unknown(cfg: AlgoConfig, classes: Iterable[type] = ()) -> None:
    """Algorithm-specific keys must belong to one of the settings classes the algorithm reads."""
    allowed = keys(*classes)
    unknown = sorted(set(cfg.extra) - set(allowed))
    if unknown:
        raise ConfigError(
            f"algo.{unknown[0]} is not a key of algo '{cfg.name}'; "
            f"algorithm-specific keys allowed: {', '.join(sorted(set(allowed))) or '(none)'}"
        )


def check_mixer(cfg: AlgoConfig, allowed: tuple[str, ...]) -> None:
    if cfg.mixer not in allowed:
        raise ConfigError(f"algo.mixer='{cfg.mixer}' does not fit algo '{cfg.name}'; allowed: {', '.join(allowed)}")
