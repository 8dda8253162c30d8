"""The value checks every config reader shares: a value as its declared type, a number in its range; each failure
is one `ConfigError` line naming the field and the allowed values."""

from __future__ import annotations

import math
from typing import Any

from jaxfactor.errors import ConfigError


def check_type(section: str, name: str, value: Any, kind: type, nullable: bool = False) -> Any:
    """The value as `kind` (an int as float; an integral float such as 2e6 as int), or a one-line error."""
    field = f"{section}.{name}" if section else name
    if kind is int and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise ConfigError(f"{field} must be {kind.__name__}{' or null' if nullable else ''}, got {value!r}")
    return float(value) if kind is float else value  # NaN and inf fail the range checks of `validate`


def check_range(
    field: str, value: float, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> None:
    bad = (
        not math.isfinite(value)
        or (lo is not None and (value <= lo if lo_open else value < lo))
        or (hi is not None and value > hi)
    )
    if bad:
        left = "(" if lo_open else "["
        lo_s = "-inf" if lo is None else f"{lo:g}"
        hi_s = "inf)" if hi is None else f"{hi:g}]"
        raise ConfigError(f"{field}={value!r} is out of range; allowed: {left}{lo_s}, {hi_s}")
