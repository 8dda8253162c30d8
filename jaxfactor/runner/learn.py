"""The one learning step every collector shares (device chunk, host loop): store the new episodes, count them,
learn once the replay can fill a batch, and name the metrics. Written for one lane (seed x grid point);
collectors `vmap` it over the lanes with `over_lanes`, whose axis name lets the step decide "every lane learns"
or "no lane learns" once for all lanes (issue 21: under `vmap` a per-lane `cond` runs both branches).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from jaxfactor import buffers
from jaxfactor.algos.base import Algorithm, HParams, LearnerState, Metrics
from jaxfactor.structs import Episodes

LANES = "lanes"  # the vmapped lane axis of every collector


def over_lanes(fn):
    """`vmap` over the lane axis, named so `learn_step` can branch once for all lanes."""
    return jax.vmap(fn, axis_name=LANES)


@struct.dataclass
class RunnerState:
    """Everything a lane carries between updates. No env state: every update collects whole episodes from resets."""

    learner: LearnerState
    buffer: buffers.BufferState
    key: jax.Array


def init_lane(
    algo: Algorithm, buffer_size: int, key: jax.Array, hp: HParams | None = None, segment_length: int | None = None
) -> RunnerState:
    """Fresh state of one lane; `hp` overrides the config's hyperparameters (one grid point of a sweep);
    `segment_length`: the replay stores segments of that many steps (runner.layout=segments)."""
    k_learner, k_run = jax.random.split(key)
    return RunnerState(
        learner=algo.init(k_learner, hp), buffer=buffers.init(algo.spec, buffer_size, segment_length), key=k_run
    )


def split_update_keys(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(the lane's next key, the collection key, the learn step's [2] keys): one update's key stream."""
    keys = jax.random.split(key, 4)
    return keys[0], keys[1], keys[2:]


def masked_mean(x: jax.Array, valid: jax.Array, count: jax.Array | None = None) -> jax.Array:
    """Mean over the valid rows of per-row sums `x` over `count` episodes each (one when None): NaN when no
    episode counts (there is nothing to report)."""
    count = valid if count is None else jnp.where(valid, count, 0)
    return jnp.sum(jnp.where(valid, x, 0.0)) / jnp.sum(count).astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class LearnSettings:
    """The static settings of `learn_step`: the run's algo.batch_size, length_buckets, epochs and learning_starts,
    and the lane axis the step is vmapped over (`over_lanes`; None for one lane outside any vmap)."""

    batch_size: int
    length_buckets: int = 1
    epochs: int = 1
    learning_starts: int = 0
    axis_name: str | None = LANES


def learn_step(
    algo: Algorithm,
    learner: LearnerState,
    buffer: buffers.BufferState,
    episodes: Episodes,
    stats: dict[str, jax.Array],
    valid: jax.Array,
    key: jax.Array,
    settings: LearnSettings,
    active: jax.Array | bool = True,
) -> tuple[LearnerState, buffers.BufferState, Metrics]:
    """Rows [E, T, ...] (episodes, or segments) and their stats [E] collected with `algo.behaviour(learner)`;
    `valid` [E] marks the rows to keep (an invalid one, e.g. from a crashed simulator, is neither stored nor
    counted); `key` is the [2] learn keys of `split_update_keys`. `stats` holds per-row "return", "length" and
    "won" of its episode, or with "steps" and "episodes" (segments) the sums over the episodes finished in the row.
    `active` False: the lane has spent its budget and stays as it is (nothing stored, counted or learned).
    `settings.epochs` gradient steps, each on a fresh batch, once `settings.learning_starts` env steps were
    collected."""
    batch_size, axis_name = settings.batch_size, settings.axis_name
    epochs, learning_starts = settings.epochs, settings.learning_starts
    valid = valid & active
    schedule = algo.schedule(learner)  # what these episodes were collected with
    buffer = buffers.add(buffer, episodes, valid)
    steps, finished = stats.get("steps", stats["length"]), stats.get("episodes")
    learner = algo.observe(
        learner, steps=jnp.sum(jnp.where(valid, steps, 0)), episodes=jnp.sum(valid.astype(jnp.int32))
    )

    def gradient_step(learner, key):
        batch = buffers.sample(buffer, key[0], batch_size)
        return update_on_real_slots(algo, learner, batch, key[1], settings.length_buckets, axis_name)

    def learn(learner):
        if epochs == 1:
            return gradient_step(learner, key)
        learner, per_epoch = jax.lax.scan(gradient_step, learner, jax.random.split(key[0], (epochs, 2)))
        return learner, {k: (jnp.sum if k == "target_updated" else jnp.mean)(v, axis=0) for k, v in per_epoch.items()}

    def skip(learner):  # same output structure; NaN marks "no update" in the metrics
        shapes = jax.eval_shape(learn, learner)[1]
        return learner, jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

    def each(learner):  # lanes differ (a host lane that lost episodes): every lane learns, a lane that cannot keeps
        # its state. Not a `cond` on the per-lane flag: under vmap that turns the length buckets' switch inside
        # `learn` into a select too, which computes every bucket and holds all their temporaries at once.
        learned, learned_metrics = learn(learner)
        kept, skipped_metrics = skip(learner)
        pick = lambda a, b: jnp.where(learning, a, b)  # noqa: E731
        return jax.tree.map(pick, learned, kept), jax.tree.map(pick, learned_metrics, skipped_metrics)

    learning = buffers.can_sample(buffer, batch_size) & active & (learner.t_env >= learning_starts)
    if axis_name is None:
        learner, train_metrics = jax.lax.cond(learning, learn, skip, learner)
    else:  # the same for every lane, so a real branch: no gradient is computed and thrown away before learning
        lanes = learning.astype(jnp.int32)
        branch = jax.lax.pmin(lanes, axis_name) + jax.lax.pmax(lanes, axis_name)  # 0 none, 1 some, 2 all
        learner, train_metrics = jax.lax.switch(branch, (skip, each, learn), learner)
    metrics = {
        **{f"train/{k}": v for k, v in train_metrics.items()},
        "train/learning": learning.astype(jnp.float32),
        "rollout/return": masked_mean(stats["return"], valid, finished),
        "rollout/win_rate": masked_mean(stats["won"], valid, finished),
        "rollout/length": masked_mean(stats["length"].astype(jnp.float32), valid, finished),
        **{f"rollout/{k}": v for k, v in schedule.items()},
        "env_steps": learner.t_env,
    }
    return learner, buffer, metrics


def bucket_lengths(slots: int, count: int) -> tuple[int, ...]:
    """The batch lengths (slots per episode) the update is compiled for: `count` evenly spaced up to `slots`."""
    return tuple(sorted({max(2, -(-slots * (i + 1) // count)) for i in range(count)}))


def bucket_index(lengths: tuple[int, ...], needed: jax.Array) -> jax.Array:
    """Which of the compiled `lengths` a batch whose longest episode fills `needed` slots trains at: the first
    one holding it."""
    return jnp.searchsorted(jnp.asarray(lengths, jnp.int32), needed)


def update_on_real_slots(
    algo: Algorithm, learner: LearnerState, batch: Episodes, key: jax.Array, count: int, axis_name: str | None
) -> tuple[LearnerState, Metrics]:
    """`algo.update` on the batch cut to the shortest compiled length holding every episode's filled slots
    (PyMARL2 cuts each batch to its longest episode): the slots cut hold padding, which every loss masks, so
    this is the padded update up to float rounding. With `axis_name`, one length for all lanes."""
    slots = batch.filled.shape[1]
    lengths = bucket_lengths(slots, count)
    if len(lengths) == 1:
        return algo.update(learner, batch, key)
    needed = jnp.max(jnp.sum(batch.filled, axis=1, dtype=jnp.int32))
    if axis_name is not None:
        needed = jax.lax.pmax(needed, axis_name)
    index = bucket_index(lengths, needed)

    def cut(length):
        return lambda learner: algo.update(learner, jax.tree.map(lambda x: x[:, :length], batch), key)

    return jax.lax.switch(index, [cut(length) for length in lengths], learner)
