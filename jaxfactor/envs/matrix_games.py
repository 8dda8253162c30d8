"""One-step cooperative matrix games (ALGORITHMS.md §10.1, PyMARL2 `one_step_matrix_game.py`).

n agents, |U| actions each, payoff an n-D tensor (row = agent 0's action). Every agent's
observation and the global state are the one-hot step index ([1,0] before acting, [0,1] in the
bootstrap slot). One step, true termination, reward R[u_1..u_n]; all actions always available.

Payoff shift (S2Q's moving optimum, §10.2): with `payoff_after` and `shift_at`, an episode that starts
once the learner has collected >= shift_at env steps is paid by `payoff_after`. The switch happens
inside the jitted loop through `reset(key, t_env)`; learners and replay are untouched.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxfactor.envs.base import ENV_KINDS, check_params
from jaxfactor.errors import ConfigError
from jaxfactor.structs import EnvSpec, Timestep

if TYPE_CHECKING:
    from jaxfactor.algos.base import Algorithm, Params


def payoff_array(payoff: Any, field: str = "env.payoff") -> np.ndarray:
    """Validate a nested-list payoff: a regular n-D tensor (n >= 2) with the same action count per agent."""

    def shape_of(x: Any, depth: int) -> tuple[int, ...]:
        if isinstance(x, (list, tuple)):
            if len(x) == 0:
                raise ConfigError(
                    f"{field} has an empty list at depth {depth}; allowed: a non-empty nested list of numbers"
                )
            shapes = {shape_of(v, depth + 1) for v in x}
            if len(shapes) != 1:
                raise ConfigError(
                    f"{field} is ragged at depth {depth} (rows of different lengths); "
                    "allowed: a regular nested list, one axis per agent, each of length |U|"
                )
            return (len(x),) + shapes.pop()
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not np.isfinite(x):
            raise ConfigError(f"{field} holds {x!r}; allowed: finite numbers in a nested list")
        return ()

    shape = shape_of(payoff, 0)
    if len(shape) < 2:
        raise ConfigError(f"{field} has {len(shape)} axis/axes; allowed: one axis per agent, at least 2")
    if len(set(shape)) != 1:
        raise ConfigError(
            f"{field} has shape {list(shape)}; allowed: the same number of actions for every "
            f"agent (a square/cubic tensor, e.g. {[shape[0]] * len(shape)})"
        )
    return np.asarray(payoff, dtype=np.float32)


@struct.dataclass
class MatrixState:
    t: jax.Array  # [] int32: 0 before acting, 1 after
    shifted: jax.Array  # [] bool: this episode is paid by payoff_after


@ENV_KINDS.register("matrix")
class MatrixGame:
    def __init__(self, payoff: Any, *, payoff_after: Any = None, shift_at: int | None = None, validated: bool = False):
        """`validated=True` takes a (possibly traced) square array as is, so one program can vmap over
        several payoff tables (seeds x games); user input always goes through `payoff_array`."""
        self.payoff = jnp.asarray(payoff if validated else payoff_array(payoff), jnp.float32)
        if (payoff_after is None) != (shift_at is None):
            given, missing = (
                ("env.payoff_after", "env.shift_at") if shift_at is None else ("env.shift_at", "env.payoff_after")
            )
            raise ConfigError(f"{given} is set but {missing} is not; a payoff shift needs both")
        self.shift_at = None if shift_at is None else int(shift_at)
        self.payoff_after = None
        if payoff_after is not None:
            after = payoff_after if validated else payoff_array(payoff_after, "env.payoff_after")
            if tuple(np.shape(after)) != tuple(self.payoff.shape):
                raise ConfigError(
                    f"env.payoff_after has shape {list(np.shape(after))}; allowed: the shape of "
                    f"env.payoff, {list(self.payoff.shape)}"
                )
            if isinstance(shift_at, bool) or not isinstance(shift_at, int) or shift_at < 0:
                raise ConfigError(f"env.shift_at={shift_at!r} is out of range; allowed: an integer >= 0 (env steps)")
            self.payoff_after = jnp.asarray(after, jnp.float32)
        n, a = self.payoff.ndim, self.payoff.shape[0]
        self.spec = EnvSpec(num_agents=n, obs_dim=2, state_dim=2, num_actions=a, episode_limit=1, has_win_flag=False)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> MatrixGame:
        check_params("matrix", params, required=("payoff",), optional=("payoff_after", "shift_at"))
        return cls(params["payoff"], payoff_after=params.get("payoff_after"), shift_at=params.get("shift_at"))

    def payoff_in_force(self, t_env: float) -> np.ndarray:
        """The table paying episodes that start at learner step t_env (host-side, for reports)."""
        shifted = self.shift_at is not None and t_env >= self.shift_at
        return np.asarray(self.payoff_after if shifted else self.payoff)

    def _timestep(self, t: jax.Array, reward: jax.Array, terminal: jax.Array) -> Timestep:
        n, a = self.spec.num_agents, self.spec.num_actions
        onehot = jax.nn.one_hot(t, 2, dtype=jnp.float32)
        return Timestep(
            obs=jnp.broadcast_to(onehot, (n, 2)),
            state=onehot,
            avail=jnp.ones((n, a), dtype=bool),
            reward=reward,
            terminal=terminal,
            won=jnp.array(False),
        )

    def reset(self, key: jax.Array, t_env: jax.Array | None = None) -> tuple[MatrixState, Timestep]:
        del key
        shifted = jnp.array(False) if self.shift_at is None or t_env is None else t_env >= self.shift_at
        state = MatrixState(t=jnp.array(0, jnp.int32), shifted=shifted)
        return state, self._timestep(state.t, jnp.array(0.0, jnp.float32), jnp.array(False))

    def step(self, key: jax.Array, env_state: MatrixState, actions: jax.Array) -> tuple[MatrixState, Timestep]:
        del key
        cell = tuple(actions[i] for i in range(self.spec.num_agents))
        reward = self.payoff[cell]
        if self.payoff_after is not None:
            reward = jnp.where(env_state.shifted, self.payoff_after[cell], reward)
        state = env_state.replace(t=env_state.t + 1)
        return state, self._timestep(jnp.minimum(state.t, 1), reward, jnp.array(True))


def all_joint_actions(num_agents: int, num_actions: int) -> jax.Array:
    """Every joint action [A^N, N], in the row-major order of an N-D payoff table."""
    return jnp.array(list(itertools.product(range(num_actions), repeat=num_agents)), jnp.int32)


def joint_tables(algo: Algorithm, params: Params, ts: Timestep) -> dict[str, jax.Array]:
    """A learner's tables over every joint action of a one-step game (`ts` from reset): its
    `Algorithm.joint_values` with each per-joint-action value shaped [..., A, ..., A] like the payoff."""
    if algo.joint_values is None:
        raise ConfigError(f"algo={algo.name} reports no joint values; the matrix-game tables need them")
    N, A = algo.spec.num_agents, algo.spec.num_actions
    values = algo.joint_values(params, ts, all_joint_actions(N, A))
    tables = {k: v.reshape(v.shape[:-1] + (A,) * N) for k, v in values.per_joint.items()}
    return {**values.shared, **tables}


def permute_actions(payoff: Sequence, *orders: Sequence[int]) -> list:
    """Relabel each agent's actions: entry [u_1, ..., u_n] of the result is payoff[orders[0][u_1], ...].
    Moves the optimum to another cell without changing the game (results must not depend on it)."""
    table = payoff_array(payoff)
    for axis, order in enumerate(orders):
        table = np.take(table, order, axis=axis)
    return table.tolist()


def optimum(payoff: Sequence) -> tuple[int, ...]:
    """The joint action (one index per agent) of the payoff's largest entry."""
    table = np.asarray(payoff)
    return tuple(int(i) for i in np.unravel_index(np.argmax(table), table.shape))


def three_agent_m3() -> list:
    """A 3-agent analogue of M3 (ALGORITHMS.md §10.1): all A 8, all C 7.9 (the local optimum), A for some but
    not all agents -12, otherwise 0."""
    table = np.zeros((3, 3, 3))
    for u in itertools.product(range(3), repeat=3):
        n_a = sum(a == 0 for a in u)
        table[u] = 8 if n_a == 3 else (-12 if n_a > 0 else (7.9 if all(a == 2 for a in u) else 0))
    return table.tolist()
