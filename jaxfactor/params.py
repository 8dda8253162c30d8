"""Checks of env.<field> parameters shared by the JAX env kinds and the (JAX-free) host simulator kinds."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from jaxfactor.errors import ConfigError


def check_params(
    kind: str, params: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    """Every kind-specific key must be known to the kind, and required ones present."""
    allowed = required + optional
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            f"env.{unknown[0]} is not a key of env kind '{kind}'; allowed: {', '.join(allowed) or '(none)'}"
        )
    missing = [k for k in required if params.get(k) is None]
    if missing:
        raise ConfigError(f"env.{missing[0]} is required for env kind '{kind}'")


def number(
    field: str,
    value: Any,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float | int:
    """A numeric env parameter checked for type, finiteness and range (one-line error naming env.<field>)."""
    kind = "an integer" if integer else "a number"
    if integer and isinstance(value, float) and value.is_integer():
        value = int(value)  # 4.0 from the command line
    numeric = isinstance(value, int) if integer else isinstance(value, (int, float)) and math.isfinite(value)
    if (
        isinstance(value, bool)
        or not numeric
        or (low is not None and (value <= low if low_open else value < low))
        or (high is not None and value > high)
    ):
        lo, hi = "-inf" if low is None else f"{low:g}", "inf)" if high is None else f"{high:g}]"
        bounds = f"{'(' if low_open else '['}{lo}, {hi}"
        problem = "is out of range" if numeric and not isinstance(value, bool) else f"is not {kind}"
        raise ConfigError(f"env.{field}={value!r} {problem}; allowed: {kind} in {bounds}")
    return value if integer else float(value)


def choice(field: str, value: Any, allowed: tuple[str, ...] | list[str]) -> str:
    """A string parameter from a fixed set (one-line error naming env.<field> and the allowed values)."""
    if value not in allowed:
        raise ConfigError(f"env.{field}={value!r} is unknown; allowed: {', '.join(allowed)}")
    return value


def boolean(field: str, value: Any) -> bool:
    """A true/false parameter (one-line error naming env.<field>; 0/1 and strings are not booleans)."""
    if not isinstance(value, bool):
        raise ConfigError(f"env.{field}={value!r} is not a boolean; allowed: true, false")
    return value
