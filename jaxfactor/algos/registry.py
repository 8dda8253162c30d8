"""Algorithm registry."""

from __future__ import annotations

from jaxfactor.algos.base import Algorithm
from jaxfactor.config import AlgoConfig, EnvConfig
from jaxfactor.registry import Registry
from jaxfactor.structs import EnvSpec

ALGOS: Registry = Registry("algo")


def make_algo(cfg: AlgoConfig, env_cfg: EnvConfig, spec: EnvSpec) -> Algorithm:
    return ALGOS.get(cfg.name)(cfg, env_cfg, spec)
