"""SMAX (jaxmarl) adapter: every SMAX map as one team of learners against the heuristic enemy.

Exposes the stacked per-agent observations, jaxmarl's world state as the global state, the
availability masks, ONE team reward (SMAX gives every ally the same team reward: we take it
once, never the sum over agents, ALGORITHMS.md §1.10), termination only when a side is wiped
out (the time limit is a truncation handled by the runner), and a `won` flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfactor.envs.base import ENV_KINDS, check_params, number, quiet_jaxmarl, stack_agents
from jaxfactor.errors import ConfigError
from jaxfactor.structs import EnvSpec, Timestep


def smax_map_names() -> list[str]:
    quiet_jaxmarl()
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    return sorted(MAP_NAME_TO_SCENARIO)


@ENV_KINDS.register("smax")
class SMAXAdapter:
    def __init__(
        self,
        map_name: str,
        max_steps: int = 100,
        enemy_shoots: bool = True,
        attack_mode: str = "closest",
        reward_scale: float = 1.0,
    ):
        quiet_jaxmarl()
        from jaxmarl.environments.smax import HeuristicEnemySMAX, map_name_to_scenario

        if map_name not in smax_map_names():
            raise ConfigError(f"unknown env.map_name '{map_name}'; allowed: {', '.join(smax_map_names())}")
        max_steps = number("max_steps", max_steps, integer=True, low=1)
        reward_scale = number("reward_scale", reward_scale, low=0.0, low_open=True)
        if not isinstance(enemy_shoots, bool):
            raise ConfigError(f"env.enemy_shoots={enemy_shoots!r} must be a boolean; allowed: true, false")
        self.env = HeuristicEnemySMAX(
            scenario=map_name_to_scenario(map_name),
            max_steps=max_steps,
            enemy_shoots=enemy_shoots,
            attack_mode=attack_mode,
        )
        self.reward_scale = float(reward_scale)
        self.agents = list(self.env.agents)
        n = len(self.agents)
        obs_dim = self.env.observation_spaces[self.agents[0]].shape[0]
        key = jax.random.key(0)
        state_dim = jax.eval_shape(lambda k: self.env.reset(k)[0]["world_state"], key).shape[-1]
        self.state_offset, self.state_scale = self._state_normalisation(int(state_dim))
        self.spec = EnvSpec(
            num_agents=n,
            obs_dim=int(obs_dim),
            state_dim=int(state_dim),
            num_actions=int(self.env.action_spaces[self.agents[0]].n),
            episode_limit=int(max_steps),
            has_win_flag=True,
        )

    def _state_normalisation(self, state_dim: int) -> tuple[jax.Array, jax.Array]:
        """jaxmarl's world state holds raw map coordinates (0..32) and unit-type ids; scale them to
        about [-1, 1] as SMAC does, or the QMIX hypernetworks start with huge |weights|."""
        inner = self.env._env
        feats = list(inner.own_features)
        units = inner.num_agents  # allies + enemies
        offset, scale = np.zeros(state_dim, np.float32), np.ones(state_dim, np.float32)
        for u in range(units):
            for name, size in (("position_x", inner.map_width), ("position_y", inner.map_height)):
                i = u * len(feats) + feats.index(name)
                offset[i], scale[i] = size / 2.0, 2.0 / size
        types_start = units * len(feats) + units  # after per-unit features and unit teams
        scale[types_start : types_start + units] = 1.0 / max(len(inner.unit_type_names) - 1, 1)
        return jnp.asarray(offset), jnp.asarray(scale)

    def _normalise_state(self, raw: jax.Array) -> jax.Array:
        inner = self.env._env
        units, feats = inner.num_agents, len(inner.own_features)
        scaled = (raw - self.state_offset) * self.state_scale
        per_unit = scaled[: units * feats].reshape(units, feats)
        alive = raw[: units * feats].reshape(units, feats)[:, :1] > 0  # dead units keep all-zero features
        return jnp.concatenate([jnp.where(alive, per_unit, 0.0).reshape(-1), scaled[units * feats :]])

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SMAXAdapter:
        check_params(
            "smax",
            params,
            required=("map_name",),
            optional=("max_steps", "enemy_shoots", "attack_mode", "reward_scale"),
        )
        return cls(**{k: v for k, v in params.items() if v is not None})

    def _timestep(self, obs: dict, env_state: Any, reward: jax.Array) -> Timestep:
        inner = env_state.state
        n = self.spec.num_agents
        allies_dead = jnp.all(~inner.unit_alive[:n])
        enemies_dead = jnp.all(~inner.unit_alive[n:])
        avail = self.env.get_avail_actions(env_state)
        return Timestep(
            obs=stack_agents(obs, self.agents),
            state=self._normalise_state(obs["world_state"].astype(jnp.float32)),
            avail=jnp.stack([avail[a] for a in self.agents]).astype(bool),
            reward=jnp.asarray(reward, jnp.float32) * self.reward_scale,
            terminal=allies_dead | enemies_dead,
            won=enemies_dead & ~allies_dead,
        )

    def reset(self, key: jax.Array, t_env: jax.Array | None = None) -> tuple[Any, Timestep]:
        del t_env
        obs, env_state = self.env.reset(key)
        return env_state, self._timestep(obs, env_state, jnp.array(0.0))

    def step(self, key: jax.Array, env_state: Any, actions: jax.Array) -> tuple[Any, Timestep]:
        action_dict = {a: actions[i] for i, a in enumerate(self.agents)}
        # step_env: no auto-reset, so the final observation survives for the bootstrap slot.
        obs, env_state, rewards, _, _ = self.env.step_env(key, env_state, action_dict)
        return env_state, self._timestep(obs, env_state, rewards[self.agents[0]])
