"""Overcooked (jaxmarl) adapter: two cooks, flattened grid observations, one shared reward.

Observations are jaxmarl's (H, W, 26) feature grids flattened; the global state is both agents'
flattened observations concatenated (jaxmarl's CTRolloutManager convention); all 6 actions are
always available; the team reward is the delivery reward both agents share (20 per soup) plus
`shaping` x the sum of jaxmarl's shaped rewards (default 0: the sparse task ME-IGM reports).
Episodes end only at the time limit (a truncation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax

from jaxfactor.envs.base import ENV_KINDS, JaxmarlTeamAdapter, check_params, number, quiet_jaxmarl
from jaxfactor.errors import ConfigError
from jaxfactor.structs import Timestep


def overcooked_layout_names() -> list[str]:
    quiet_jaxmarl()
    from jaxmarl.environments.overcooked import overcooked_layouts

    return sorted(overcooked_layouts)


@ENV_KINDS.register("overcooked")
class OvercookedAdapter(JaxmarlTeamAdapter):
    def __init__(self, layout: str, max_steps: int = 400, shaping: float = 0.0):
        import warnings

        from flax.core import FrozenDict

        quiet_jaxmarl()
        from jaxmarl.environments.overcooked import Overcooked, overcooked_layouts

        if layout not in overcooked_layouts:
            raise ConfigError(f"unknown env.layout '{layout}'; allowed: {', '.join(overcooked_layout_names())}")
        max_steps = number("max_steps", max_steps, integer=True, low=1)
        shaping = number("shaping", shaping, low=0.0)
        with warnings.catch_warnings():  # jaxmarl recommends OvercookedV2; ME-IGM used the original
            warnings.simplefilter("ignore")
            env = Overcooked(layout=FrozenDict(overcooked_layouts[layout]), max_steps=max_steps)
        self.shaping = float(shaping)
        self._setup(env, list(env.agents), max_steps, obs_dtype="uint8")  # feature grids of counts 0..19

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> OvercookedAdapter:
        check_params("overcooked", params, required=("layout",), optional=("max_steps", "shaping"))
        return cls(**{k: v for k, v in params.items() if v is not None})

    def step(self, key: jax.Array, env_state: Any, actions: jax.Array) -> tuple[Any, Timestep]:
        obs, env_state, rewards, _, info = self.env.step_env(key, env_state, dict(zip(self.learners, actions)))
        shaped = sum(info["shaped_reward"][a] for a in self.learners)
        return env_state, self._timestep(obs, rewards[self.learners[0]] + self.shaping * shaped)
