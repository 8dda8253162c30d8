"""The device collector: PyMARL2 "parallel runner" episodes inside the compiled program (ALGORITHMS.md §1.2, §1.7).

E envs each play one whole episode from a reset at the learner's step count, under the layout of
`runner/episodes.py`. Envs whose episode is over keep their final state (the step result is discarded),
so the bootstrap slot holds the true final observation.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxfactor.algos.base import Algorithm, Behaviour
from jaxfactor.envs.base import JaxEnv
from jaxfactor.runner.episodes import episode_stats, rollout_keys, slot_flags, start, write_slot
from jaxfactor.structs import Episodes, where_env


def rollout(algo: Algorithm, env: JaxEnv, behaviour: Behaviour, key: jax.Array, num_envs: int, greedy: bool,
            record: bool = False) -> tuple[Episodes, dict[str, jax.Array]] | tuple[Episodes, dict, dict]:
    """One episode in each of `num_envs` envs, all reset at `behaviour.t_env`, acting with `behaviour`.
    Returns Episodes [E, T, ...] and per-env stats [E]; with `record`, also {"states": env states before
    every slot [E, T, ...] (repeating the final one after the end), "keys": env-step keys [E, T]}.
    Stops stepping once every episode is over (issue 21) and writes the remaining slots as the layout's padding,
    the same bits as stepping through all T slots."""
    L = env.spec.episode_limit
    reset_keys, act_keys, env_keys = rollout_keys(key, num_envs, L)
    env_state, ts = jax.vmap(env.reset, in_axes=(0, None))(reset_keys, behaviour.t_env)
    init = (env_state, ts, algo.initial_actor_state(num_envs), start(jnp, (num_envs,)))

    def slot(carry, xs):
        env_state, ts, actor, progress = carry
        t, k_act, k_env = xs
        actions, actor = algo.act(behaviour, actor, ts, jnp.full((num_envs,), t == 0), k_act, greedy)
        filled, real = slot_flags(progress, t, L)
        new_env_state, new_ts = jax.vmap(env.step)(k_env, env_state, actions)
        stored, progress = write_slot(jnp, progress, filled, real, ts.obs, ts.state, ts.avail, actions,
                                      new_ts.reward, new_ts.terminal, new_ts.won)
        trace: Any = (env_state, k_env) if record else None
        carry = (where_env(real, new_env_state, env_state), where_env(real, new_ts, ts), actor, progress)
        return carry, (stored, trace)

    batch_major = lambda tree: jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), tree)  # noqa: E731  [T, E] -> [E, T]
    if record:
        (_, _, _, progress), (episodes, trace) = jax.lax.scan(slot, init, (jnp.arange(L + 1), act_keys, env_keys))
        states, keys = batch_major(trace)
        return batch_major(episodes), episode_stats(jnp, progress), {"states": states, "keys": keys}
    progress, episodes = _until_over(slot, init, act_keys, env_keys, L)
    return batch_major(episodes), episode_stats(jnp, progress)


def _until_over(slot, init, act_keys, env_keys, limit: int):
    """`scan(slot)` over the T = limit + 1 slots that stops once every episode is over: the slots left are the
    layout's padding (the frozen final observation, action 0, nothing else), exactly what the slots would write."""
    T = limit + 1
    slot_shapes = jax.eval_shape(lambda c: slot(c, (0, act_keys[0], env_keys[0]))[1][0], init)
    slots = jax.tree.map(lambda s: jnp.zeros((T,) + s.shape, s.dtype), slot_shapes)

    def running(loop):
        t, (_, _, _, progress), _ = loop
        return (t < T) & ~jnp.all(progress.over)

    def step(loop):
        t, carry, slots = loop
        carry, (stored, _) = slot(carry, (t, act_keys[t], env_keys[t]))
        return t + 1, carry, jax.tree.map(lambda buf, x: buf.at[t].set(x), slots, stored)

    t_stop, (_, ts, _, progress), slots = jax.lax.while_loop(running, step, (jnp.int32(0), init, slots))
    none = jnp.zeros_like(progress.over)
    padding = Episodes(obs=ts.obs, state=ts.state, avail=ts.avail, actions=jnp.zeros_like(slots.actions[0]),
                       reward=jnp.zeros_like(slots.reward[0]), terminal=none, filled=none)
    written = jnp.arange(T) < t_stop
    episodes = jax.tree.map(lambda x, pad: jnp.where(written.reshape((T,) + (1,) * pad.ndim), x, pad[None]),
                            slots, padding)
    return progress, episodes
