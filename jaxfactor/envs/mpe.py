"""MPE (jaxmarl) adapters with discrete actions: cooperative navigation and cooperative predator-prey.

Both expose stacked per-agent observations, the concatenation of all learners' observations as the
global state (jaxmarl's CTRolloutManager convention for MPE), all 5 actions available (no-op, -x, +x,
-y, +y), one team reward, and no termination (episodes end at the time limit, a truncation).

* `mpe_spread` (`MPE_simple_spread_v3`): team reward = the sum of the agents' rewards (jaxmarl's
  global reward for MPE): coverage of the landmarks minus collisions.
* `mpe_tag` (`MPE_simple_tag_v3`): our agents are the predators ("adversaries"); their identical
  reward (+10 per predator-prey contact) is the team reward. The prey is not learned: it follows a
  fixed scripted policy, `prey_policy=random` (uniform over the 5 actions each step) or `flee` (the
  move best aligned with "away from the nearest predator", pulled back toward the centre once it is
  outside the unit square, so it cannot escape to infinity).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfactor.envs.base import ENV_KINDS, JaxmarlTeamAdapter, check_params, number, quiet_jaxmarl
from jaxfactor.errors import ConfigError
from jaxfactor.structs import Timestep

# Unit direction of each discrete MPE action (jaxmarl `_decode_discrete_action`): no-op, -x, +x, -y, +y.
ACTION_DIRECTIONS = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], np.float32)
PREY_POLICIES = ("random", "flee")


@ENV_KINDS.register("mpe_spread")
class MPESpread(JaxmarlTeamAdapter):
    def __init__(self, num_agents: int = 3, max_steps: int = 25, local_ratio: float = 0.5):
        quiet_jaxmarl()
        from jaxmarl.environments.mpe.simple_spread import SimpleSpreadMPE

        n = number("num_agents", num_agents, integer=True, low=1)
        local_ratio = number("local_ratio", local_ratio, low=0.0, high=1.0)
        env = SimpleSpreadMPE(
            num_agents=n,
            num_landmarks=n,
            local_ratio=local_ratio,
            max_steps=number("max_steps", max_steps, integer=True, low=1),
        )
        self._setup(env, list(env.agents), max_steps)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MPESpread:
        check_params("mpe_spread", params, required=(), optional=("num_agents", "max_steps", "local_ratio"))
        return cls(**{k: v for k, v in params.items() if v is not None})

    def step(self, key: jax.Array, env_state: Any, actions: jax.Array) -> tuple[Any, Timestep]:
        obs, env_state, rewards, _, _ = self.env.step_env(key, env_state, dict(zip(self.learners, actions)))
        return env_state, self._timestep(obs, sum(rewards[a] for a in self.learners))


@ENV_KINDS.register("mpe_tag")
class MPETag(JaxmarlTeamAdapter):
    def __init__(
        self, num_predators: int = 3, num_obstacles: int = 2, max_steps: int = 25, prey_policy: str = "random"
    ):
        quiet_jaxmarl()
        from jaxmarl.environments.mpe.simple_tag import SimpleTagMPE

        if prey_policy not in PREY_POLICIES:
            raise ConfigError(f"unknown env.prey_policy '{prey_policy}'; allowed: {', '.join(PREY_POLICIES)}")
        env = SimpleTagMPE(
            num_good_agents=1,
            num_adversaries=number("num_predators", num_predators, integer=True, low=1),
            num_obstacles=number("num_obstacles", num_obstacles, integer=True, low=0),
            max_steps=number("max_steps", max_steps, integer=True, low=1),
        )
        self.prey_policy = prey_policy
        self.prey = env.good_agents[0]
        self._setup(env, list(env.adversaries), max_steps)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MPETag:
        check_params(
            "mpe_tag", params, required=(), optional=("num_predators", "num_obstacles", "max_steps", "prey_policy")
        )
        return cls(**{k: v for k, v in params.items() if v is not None})

    def prey_action(self, key: jax.Array, env_state: Any) -> jax.Array:
        """The scripted prey's discrete action."""
        if self.prey_policy == "random":
            return jax.random.randint(key, (), 0, len(ACTION_DIRECTIONS))
        n = self.spec.num_agents
        prey_pos = env_state.p_pos[n]
        away = prey_pos - env_state.p_pos[:n]
        nearest = away[jnp.argmin(jnp.sum(away**2, -1))]
        desired = nearest / (jnp.linalg.norm(nearest) + 1e-6)
        desired = desired - jnp.where(jnp.abs(prey_pos) > 1.0, prey_pos, 0.0)  # stay near the arena
        return jnp.argmax(jnp.asarray(ACTION_DIRECTIONS[1:]) @ desired) + 1

    def step(self, key: jax.Array, env_state: Any, actions: jax.Array) -> tuple[Any, Timestep]:
        k_prey, k_env = jax.random.split(key)
        action_dict = dict(zip(self.learners, actions))
        action_dict[self.prey] = self.prey_action(k_prey, env_state)
        obs, env_state, rewards, _, _ = self.env.step_env(k_env, env_state, action_dict)
        return env_state, self._timestep(obs, rewards[self.learners[0]])
