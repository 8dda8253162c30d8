"""Algorithm registry."""

from __future__ import annotations

from jaxfactor.algos.base import Algorithm
from jaxfactor.config import AlgoConfig
from jaxfactor.registry import Registry
from jaxfactor.spec import AgentInputs, EnvSpec

ALGOS: Registry = Registry("algo")


def make_algo(cfg: AlgoConfig, spec: EnvSpec, inputs: AgentInputs) -> Algorithm:
    """The registered algorithm `cfg.name` for one env spec and the agents' input flags."""
    return ALGOS.get(cfg.name)(cfg, spec, inputs)
