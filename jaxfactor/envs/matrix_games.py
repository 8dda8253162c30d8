"""One-step cooperative matrix games (ALGORITHMS.md §10.1, PyMARL2 `one_step_matrix_game.py`).

n agents, |U| actions each, payoff an n-D tensor (row = agent 0's action). Every agent's
observation and the global state are the one-hot step index ([1,0] before acting, [0,1] in the
bootstrap slot). One step, true termination, reward R[u_1..u_n]; all actions always available.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxfactor.envs.base import ENV_KINDS, check_params
from jaxfactor.errors import ConfigError
from jaxfactor.structs import EnvSpec, Timestep


def payoff_array(payoff: Any, field: str = "env.payoff") -> np.ndarray:
    """Validate a nested-list payoff: a regular n-D tensor (n >= 2) with the same action count per agent."""

    def shape_of(x: Any, depth: int) -> tuple[int, ...]:
        if isinstance(x, (list, tuple)):
            if len(x) == 0:
                raise ConfigError(f"{field} has an empty list at depth {depth}; allowed: a non-empty nested list of numbers")
            shapes = {shape_of(v, depth + 1) for v in x}
            if len(shapes) != 1:
                raise ConfigError(f"{field} is ragged at depth {depth} (rows of different lengths); "
                                  "allowed: a regular nested list, one axis per agent, each of length |U|")
            return (len(x),) + shapes.pop()
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ConfigError(f"{field} holds {x!r}; allowed: numbers in a nested list")
        return ()

    shape = shape_of(payoff, 0)
    if len(shape) < 2:
        raise ConfigError(f"{field} has {len(shape)} axis/axes; allowed: one axis per agent, at least 2")
    if len(set(shape)) != 1:
        raise ConfigError(f"{field} has shape {list(shape)}; allowed: the same number of actions for every "
                          f"agent (a square/cubic tensor, e.g. {[shape[0]] * len(shape)})")
    return np.asarray(payoff, dtype=np.float32)


@ENV_KINDS.register("matrix")
class MatrixGame:
    def __init__(self, payoff: Any, *, validated: bool = False):
        """`validated=True` takes a (possibly traced) square array as is, so one program can vmap over
        several payoff tables (seeds x games); user input always goes through `payoff_array`."""
        self.payoff = jnp.asarray(payoff if validated else payoff_array(payoff), jnp.float32)
        n, a = self.payoff.ndim, self.payoff.shape[0]
        self.spec = EnvSpec(num_agents=n, obs_dim=2, state_dim=2, num_actions=a, episode_limit=1,
                            has_win_flag=False)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "MatrixGame":
        check_params("matrix", params, required=("payoff",))
        return cls(params["payoff"])

    def _timestep(self, t: jax.Array, reward: jax.Array, terminal: jax.Array) -> Timestep:
        n, a = self.spec.num_agents, self.spec.num_actions
        onehot = jax.nn.one_hot(t, 2, dtype=jnp.float32)
        return Timestep(obs=jnp.broadcast_to(onehot, (n, 2)), state=onehot,
                        avail=jnp.ones((n, a), dtype=bool), reward=reward, terminal=terminal,
                        won=jnp.array(False))

    def reset(self, key: jax.Array) -> tuple[jax.Array, Timestep]:
        del key
        t = jnp.array(0, jnp.int32)
        return t, self._timestep(t, jnp.array(0.0, jnp.float32), jnp.array(False))

    def step(self, key: jax.Array, env_state: jax.Array, actions: jax.Array) -> tuple[jax.Array, Timestep]:
        del key
        reward = self.payoff[tuple(actions[i] for i in range(self.spec.num_agents))]
        t = env_state + 1
        return t, self._timestep(jnp.minimum(t, 1), reward, jnp.array(True))
