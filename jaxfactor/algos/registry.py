"""Algorithm registry."""

from __future__ import annotations

import math

from jaxfactor.algos.base import Algorithm
from jaxfactor.config import AlgoConfig, EnvConfig
from jaxfactor.errors import ConfigError
from jaxfactor.registry import Registry
from jaxfactor.structs import EnvSpec

ALGOS: Registry = Registry("algo")


def make_algo(cfg: AlgoConfig, env_cfg: EnvConfig, spec: EnvSpec) -> Algorithm:
    return ALGOS.get(cfg.name)(cfg, env_cfg, spec)


def reject_extra(cfg: AlgoConfig, allowed: tuple[str, ...] = ()) -> None:
    """Algorithm-specific keys must be known to the algorithm: nothing is silently ignored."""
    unknown = sorted(set(cfg.extra) - set(allowed))
    if unknown:
        raise ConfigError(f"algo.{unknown[0]} is not a key of algo '{cfg.name}'; "
                          f"algorithm-specific keys allowed: {', '.join(allowed) or '(none)'}")


def read_extra(cfg: AlgoConfig, schema: dict[str, tuple[type, float | None, float | None]]) -> dict:
    """Validate the algorithm-specific keys: all present, typed, in range, nothing unknown.
    schema: key -> (type, low, high) with None for an open end (inclusive bounds)."""
    reject_extra(cfg, tuple(schema))
    out = {}
    for key, (kind, lo, hi) in schema.items():
        if key not in cfg.extra:
            raise ConfigError(f"algo.{key} is required by algo '{cfg.name}'")
        value = cfg.extra[key]
        if kind is int and isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)  # 1e5 for an integer key
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(f"algo.{key} must be {kind.__name__}, got {value!r}")
        if kind is float and not math.isfinite(value):
            raise ConfigError(f"algo.{key}={value!r} is not a finite number; allowed: a finite float")
        if kind in (int, float) and ((lo is not None and value < lo) or (hi is not None and value > hi)):
            raise ConfigError(f"algo.{key}={value!r} is out of range; allowed: "
                              f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]")
        out[key] = value
    return out


def check_mixer(cfg: AlgoConfig, allowed: tuple[str, ...]) -> None:
    if cfg.mixer not in allowed:
        raise ConfigError(f"algo.mixer='{cfg.mixer}' does not fit algo '{cfg.name}'; allowed: {', '.join(allowed)}")
