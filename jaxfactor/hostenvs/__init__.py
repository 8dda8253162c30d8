"""Host simulators: environments that cannot be jitted, stepped from Python in worker processes.

Nothing here imports JAX, so a simulator worker starts small and fast (spawned, never forked next to JAX).
Kinds are registered like the JAX env kinds (`env.kind`); `make_host_env` validates a kind's parameters and
returns a picklable factory that knows the env's spec without starting the simulator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from jaxfactor.hostenvs.protocol import HostEnv
from jaxfactor.registry import Registry
from jaxfactor.spec import EnvSpec

HOST_ENV_KINDS: Registry = Registry("env.kind")


class HostKind:
    """A registered host simulator: `configure` validates the kind's parameters (one-line ConfigError naming
    env.<field>) and gives the spec, without starting anything; `make` builds one simulator in a worker."""

    renders = False  # its simulators return rgb frames from render()

    @classmethod
    def configure(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], EnvSpec]:
        raise NotImplementedError

    @classmethod
    def make(cls, params: Mapping[str, Any], index: int) -> HostEnv:
        """Simulator number `index` of the run (0 .. lanes x envs - 1): a construction-time seed derives from it."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class HostEnvFactory:
    """What workers build their simulators from: picklable, with the spec known up front."""

    kind: str
    params: dict[str, Any]
    spec: EnvSpec
    builder: Callable[[dict[str, Any], int], HostEnv]

    def make(self, index: int) -> HostEnv:
        return self.builder(self.params, index)


def make_host_env(kind: str, params: Mapping[str, Any]) -> HostEnvFactory:
    cls = HOST_ENV_KINDS.get(kind)
    plain, spec = cls.configure(dict(params))
    return HostEnvFactory(kind=kind, params=plain, spec=spec, builder=cls.make)


# Importing the modules registers their kinds; none imports its simulator until a worker builds one.
from jaxfactor.hostenvs import fakes as _fakes  # noqa: F401,E402
from jaxfactor.hostenvs import grf as _grf  # noqa: F401,E402
from jaxfactor.hostenvs import highway as _highway  # noqa: F401,E402
from jaxfactor.hostenvs import smac as _smac  # noqa: F401,E402

__all__ = ["HOST_ENV_KINDS", "HostEnv", "HostEnvFactory", "HostKind", "make_host_env"]
