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


def rollout(
    algo: Algorithm,
    env: JaxEnv,
    behaviour: Behaviour,
    key: jax.Array,
    num_envs: int,
    greedy: bool,
    record: bool = False,
) -> tuple[Episodes, dict[str, jax.Array]] | tuple[Episodes, dict, dict]:
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
        stored, progress = write_slot(
            jnp, progress, filled, real, ts.obs, ts.state, ts.avail, actions, new_ts.reward, new_ts.terminal, new_ts.won
        )
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
    padding = Episodes(
        obs=ts.obs,
        state=ts.state,
        avail=ts.avail,
        actions=jnp.zeros_like(slots.actions[0]),
        reward=jnp.zeros_like(slots.reward[0]),
        terminal=none,
        filled=none,
    )
    written = jnp.arange(T) < t_stop
    episodes = jax.tree.map(
        lambda x, pad: jnp.where(written.reshape((T,) + (1,) * pad.ndim), x, pad[None]), slots, padding
    )
    return progress, episodes


def segment_rollout(
    algo: Algorithm, env: JaxEnv, behaviour: Behaviour, key: jax.Array, num_envs: int, length: int
) -> tuple[Episodes, dict[str, jax.Array]]:
    """The segment layout (JaxMARL's qmix_rnn.py): `length` env steps in each of E envs from resets at
    `behaviour.t_env`; an episode that ends (terminates or reaches the limit) restarts at once, its next slot
    the first of a new episode (`start`). Slot `length` holds what the agents see after the last step, with the
    behaviour action chosen there, and is not stepped. Returns Episodes [E, length + 1, ...] and per-env sums
    over the episodes that finished inside the segment: {"steps", "episodes", "return", "length", "won"}."""
    L = env.spec.episode_limit
    k_reset, k_act, k_env, k_restart = jax.random.split(key, 4)
    act_keys = jax.random.split(k_act, length + 1)
    env_keys = jax.random.split(k_env, (length, num_envs))
    restart_keys = jax.random.split(k_restart, (length, num_envs))
    reset = jax.vmap(env.reset, in_axes=(0, None))
    env_state, ts = reset(jax.random.split(k_reset, num_envs), behaviour.t_env)
    zeros_f, zeros_i = jnp.zeros((num_envs,), jnp.float32), jnp.zeros((num_envs,), jnp.int32)
    running = start(jnp, (num_envs,))  # the episode under way: its return, length and win so far
    done = {"episodes": zeros_i, "return": zeros_f, "length": zeros_i, "won": zeros_f}  # finished ones, summed
    first = jnp.ones((num_envs,), bool)
    init = (env_state, ts, algo.initial_actor_state(num_envs), first, running, done)

    def slot(carry, xs):
        env_state, ts, actor, first, running, done = carry
        k_act, k_env, k_restart = xs
        actions, actor = algo.act(behaviour, actor, ts, first, k_act, False)
        new_env_state, new_ts = jax.vmap(env.step)(k_env, env_state, actions)
        stored = Episodes(
            obs=ts.obs,
            state=ts.state,
            avail=ts.avail,
            actions=actions,
            reward=new_ts.reward,
            terminal=new_ts.terminal,
            filled=jnp.ones_like(first),
            start=first,
        )
        running = running.replace(
            ret=running.ret + new_ts.reward, length=running.length + 1, won=running.won | new_ts.won
        )
        ended = new_ts.terminal | (running.length >= L)
        done = {
            "episodes": done["episodes"] + ended,
            "return": done["return"] + jnp.where(ended, running.ret, 0.0),
            "length": done["length"] + jnp.where(ended, running.length, 0),
            "won": done["won"] + (ended & running.won).astype(jnp.float32),
        }
        running = where_env(ended, start(jnp, (num_envs,)), running)
        restart_state, restart_ts = reset(k_restart, behaviour.t_env)
        carry = (
            where_env(ended, restart_state, new_env_state),
            where_env(ended, restart_ts, new_ts),
            actor,
            ended,
            running,
            done,
        )
        return carry, stored

    (_, ts, actor, first, _, done), steps = jax.lax.scan(slot, init, (act_keys[:length], env_keys, restart_keys))
    actions, _ = algo.act(behaviour, actor, ts, first, act_keys[length], False)
    none = jnp.zeros_like(first)
    last = Episodes(
        obs=ts.obs,
        state=ts.state,
        avail=ts.avail,
        actions=actions,
        reward=jnp.zeros_like(zeros_f),
        terminal=none,
        filled=jnp.ones_like(first),
        start=first,
    )
    episodes = jax.tree.map(lambda xs, x: jnp.concatenate([jnp.swapaxes(xs, 0, 1), x[:, None]], axis=1), steps, last)
    return episodes, {"steps": jnp.full((num_envs,), length, jnp.int32), **done}
