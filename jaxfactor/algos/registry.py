"""Algorithm registry."""

from __future__ import annotations

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
