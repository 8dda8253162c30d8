"""Episodic collection, PyMARL2 "parallel runner" style (ALGORITHMS.md §1.2, §1.7).

E envs each play one whole episode from a reset. The scan runs T = L + 1 slots: slot t stores the
observation the agents saw, the action they chose (the bootstrap slot's behaviour action too),
the reward, the termination flag and the fill flag. Envs whose episode is over keep their final
state (the step result is discarded), so the bootstrap slot holds the true final observation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxfactor.algos.base import Algorithm, Params
from jaxfactor.envs.base import JaxEnv
from jaxfactor.structs import Episodes, where_env


def rollout(algo: Algorithm, env: JaxEnv, params: Params, key: jax.Array, num_envs: int, epsilon: jax.Array,
            greedy: bool, t_env: jax.Array | None = None) -> tuple[Episodes, dict[str, jax.Array]]:
    """One episode in each of `num_envs` envs, all reset at learner step `t_env`.
    Returns Episodes [E, T, ...] and per-env stats [E]."""
    L = env.spec.episode_limit
    k_reset, k_loop = jax.random.split(key)
    t_env = jnp.asarray(0 if t_env is None else t_env, jnp.int32)
    env_state, ts = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), t_env)
    false = jnp.zeros((num_envs,), bool)
    carry = dict(env_state=env_state, ts=ts, actor=algo.initial_actor_state(num_envs), term_seen=false,
                 over=false, ret=jnp.zeros((num_envs,)), length=jnp.zeros((num_envs,), jnp.int32), won=false)

    def slot(carry, xs):
        t, k = xs
        k_act, k_env = jax.random.split(k)
        ts = carry["ts"]
        first = jnp.full((num_envs,), t == 0)
        actions, actor = algo.act(params, carry["actor"], ts, first, k_act, epsilon, greedy)
        filled = ~carry["over"]
        real = filled & ~carry["term_seen"] & (t < L)
        new_env_state, new_ts = jax.vmap(env.step)(jax.random.split(k_env, num_envs), carry["env_state"], actions)
        reward = jnp.where(real, new_ts.reward, 0.0)
        terminal = real & new_ts.terminal
        stored = Episodes(obs=ts.obs, state=ts.state, avail=ts.avail, actions=actions, reward=reward,
                          terminal=terminal, filled=filled)
        carry = dict(env_state=where_env(real, new_env_state, carry["env_state"]),
                     ts=where_env(real, new_ts, ts), actor=actor,
                     term_seen=carry["term_seen"] | terminal,
                     over=carry["over"] | (filled & ~real),  # this slot was the bootstrap slot
                     ret=carry["ret"] + reward, length=carry["length"] + real.astype(jnp.int32),
                     won=carry["won"] | (real & new_ts.won))
        return carry, stored

    carry, episodes = jax.lax.scan(slot, carry, (jnp.arange(L + 1), jax.random.split(k_loop, L + 1)))
    episodes = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), episodes)  # [T, E, ...] -> [E, T, ...]
    stats = {"return": carry["ret"], "length": carry["length"], "won": carry["won"].astype(jnp.float32)}
    return episodes, stats
