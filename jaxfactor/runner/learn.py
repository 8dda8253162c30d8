"""The one learning step every collector shares (device chunk, host loop): store the new episodes, count them,
learn once the replay can fill a batch, and name the metrics. Written for one lane (seed x grid point);
collectors `vmap` it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxfactor import buffers
from jaxfactor.algos.base import Algorithm, HParams, LearnerState, Metrics
from jaxfactor.structs import Episodes


@struct.dataclass
class RunnerState:
    """Everything a lane carries between updates. No env state: every update collects whole episodes from resets."""

    learner: LearnerState
    buffer: buffers.BufferState
    key: jax.Array


def init_lane(algo: Algorithm, buffer_size: int, key: jax.Array, hp: HParams | None = None) -> RunnerState:
    """Fresh state of one lane; `hp` overrides the config's hyperparameters (one grid point of a sweep)."""
    k_learner, k_run = jax.random.split(key)
    return RunnerState(learner=algo.init(k_learner, hp), buffer=buffers.init(algo.spec, buffer_size), key=k_run)


def split_update_keys(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(the lane's next key, the collection key, the learn step's [2] keys): one update's key stream."""
    keys = jax.random.split(key, 4)
    return keys[0], keys[1], keys[2:]


def masked_mean(x: jax.Array, valid: jax.Array) -> jax.Array:
    """Mean over the valid episodes (NaN when none is valid: there is nothing to report)."""
    return jnp.sum(jnp.where(valid, x, 0.0)) / jnp.sum(valid).astype(jnp.float32)


def learn_step(algo: Algorithm, learner: LearnerState, buffer: buffers.BufferState, episodes: Episodes,
               stats: dict[str, jax.Array], valid: jax.Array, key: jax.Array, batch_size: int
               ) -> tuple[LearnerState, buffers.BufferState, Metrics]:
    """Episodes [E, T, ...] and their stats [E] collected with `algo.behaviour(learner)`; `valid` [E] marks the
    episodes to keep (an invalid one, e.g. from a crashed simulator, is neither stored nor counted);
    `key` is the [2] learn keys of `split_update_keys`."""
    k_sample, k_update = key[0], key[1]
    schedule = algo.schedule(learner)  # what these episodes were collected with
    buffer = buffers.add(buffer, episodes, valid)
    learner = algo.observe(learner, steps=jnp.sum(jnp.where(valid, stats["length"], 0)),
                           episodes=jnp.sum(valid.astype(jnp.int32)))

    def learn(learner):
        return algo.update(learner, buffers.sample(buffer, k_sample, batch_size), k_update)

    def skip(learner):  # same output structure; NaN marks "no update" in the metrics
        shapes = jax.eval_shape(learn, learner)[1]
        return learner, jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

    learning = buffers.can_sample(buffer, batch_size)
    learner, train_metrics = jax.lax.cond(learning, learn, skip, learner)
    metrics = {**{f"train/{k}": v for k, v in train_metrics.items()},
               "train/learning": learning.astype(jnp.float32),
               "rollout/return": masked_mean(stats["return"], valid),
               "rollout/win_rate": masked_mean(stats["won"], valid),
               "rollout/length": masked_mean(stats["length"].astype(jnp.float32), valid),
               **{f"rollout/{k}": v for k, v in schedule.items()},
               "env_steps": learner.t_env}
    return learner, buffer, metrics
