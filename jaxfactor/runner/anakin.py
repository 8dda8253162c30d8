"""The device backend (Anakin): a chunk is `scan` over updates of rollout -> learn step, written for one lane;
`DeviceBackend` compiles `jit(over_lanes(chunk))` over the sharded lanes for the run loop (DESIGN.md §2.3.11).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxfactor.algos.base import Algorithm
from jaxfactor.config import RunConfig, segment_length
from jaxfactor.envs.base import JaxEnv
from jaxfactor.errors import ConfigError
from jaxfactor.runner.lanes import local_lanes
from jaxfactor.runner.learn import LANES, LearnSettings, RunnerState, learn_step, over_lanes, split_update_keys
from jaxfactor.runner.multihost import gather
from jaxfactor.runner.rollout import rollout, segment_rollout


def make_chunk(
    algo: Algorithm,
    env: JaxEnv,
    num_envs: int,
    batch_size: int,
    num_updates: int,
    axis_name: str | None = LANES,
    length_buckets: int = 1,
    budget: int | None = None,
    *,
    epochs: int = 1,
    learning_starts: int = 0,
    segment_length: int | None = None,
) -> Callable[[RunnerState], tuple[RunnerState, dict]]:
    """chunk(runner) -> (runner, metrics [num_updates]) for one lane, to be vmapped with `over_lanes` (or
    `axis_name=None` for one lane on its own); no host round-trips inside. `length_buckets`, `epochs`,
    `learning_starts`: the algo.* settings (`chunk_for` reads them from a config). `budget`: env steps per lane
    (total_timesteps); a lane that has reached it stays frozen (its key too). `segment_length`: collect segments
    of that many steps (runner.layout=segments) instead of whole episodes."""
    every_episode = jnp.ones((num_envs,), bool)  # a JaxEnv never crashes: every collected episode is kept
    settings = LearnSettings(batch_size, length_buckets, epochs, learning_starts, axis_name)

    def collect(behaviour, key):
        if segment_length is None:
            return rollout(algo, env, behaviour, key, num_envs, greedy=False)
        return segment_rollout(algo, env, behaviour, key, num_envs, segment_length)

    def update_step(runner: RunnerState, _):
        active = True if budget is None else runner.learner.t_env < budget
        key, k_collect, k_learn = split_update_keys(runner.key)
        episodes, stats = collect(algo.behaviour(runner.learner), k_collect)
        learner, buffer, metrics = learn_step(
            algo, runner.learner, runner.buffer, episodes, stats, every_episode, k_learn, settings, active
        )
        return RunnerState(learner=learner, buffer=buffer, key=jnp.where(active, key, runner.key)), metrics

    def chunk(runner: RunnerState) -> tuple[RunnerState, dict]:
        return jax.lax.scan(update_step, runner, None, length=num_updates)

    return chunk


def chunk_for(
    cfg: RunConfig, algo: Algorithm, env: JaxEnv, num_updates: int, axis_name: str | None = LANES, budget: bool = True
) -> Callable[[RunnerState], tuple[RunnerState, dict]]:
    """`make_chunk` with every setting read from the run's config; `budget` False: no lane stops at
    total_timesteps (tools that run a fixed number of updates)."""
    a, segments = cfg.algo, segment_length(cfg)
    return make_chunk(
        algo,
        env,
        a.num_envs,
        a.batch_size,
        num_updates,
        axis_name,
        length_buckets=1 if segments else a.length_buckets,
        budget=cfg.total_timesteps if budget else None,
        epochs=a.epochs,
        learning_starts=a.learning_starts,
        segment_length=segments,
    )


def make_evaluate(algo: Algorithm, env: JaxEnv, num_episodes: int) -> Callable:
    """evaluate(params, key, t_env) -> greedy episode stats [num_episodes] on fresh envs reset at learner step
    t_env."""

    def evaluate(params, key, t_env=0):
        return rollout(algo, env, algo.greedy(params, t_env), key, num_episodes, greedy=True)[1]

    return evaluate


def greedy_summary(stats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-lane means of greedy episode stats [lanes, episodes]."""
    return {
        "eval/return": stats["return"].mean(1),
        "eval/win_rate": stats["won"].mean(1),
        "eval/length": stats["length"].mean(1),
    }


def in_lane_groups(chunk: Callable, lanes: int, groups: int) -> Callable:
    """`chunk` (over a lane axis) run on one group of lanes: grouped(runner [lanes], g) -> (runner with group g,
    lanes g, g + groups, ..., advanced by one chunk, that group's metrics [lanes / groups, ...]). The other
    groups are untouched, in place when the runner is donated; the working memory is one group's
    (runner.lane_groups). Strided groups split over the devices like the whole lane axis."""

    def grouped(runner: RunnerState, g: jax.Array) -> tuple[RunnerState, dict]:
        view = jax.tree.map(lambda x: x.reshape((lanes // groups, groups) + x.shape[1:]), runner)
        part, metrics = chunk(jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(x, g, 1, keepdims=False), view))
        view = jax.tree.map(lambda x, p: jax.lax.dynamic_update_index_in_dim(x, p, g, 1), view, part)
        return jax.tree.map(lambda x: x.reshape((lanes,) + x.shape[2:]), view), metrics

    return grouped


WORKING_MEMORY_FRACTION = 0.9  # of the memory free once the state is allocated: the rest for the runtime


def check_working_memory(compiled, lanes: int, batch_size: int) -> None:
    """A compiled chunk whose temporaries (mostly the learner's activations for every lane's batch) exceed
    the free memory would be killed at its first learning update: refuse it in one line instead."""
    from jaxfactor import buffers

    analysis = compiled.memory_analysis()
    need, free = (analysis.temp_size_in_bytes if analysis else 0), buffers.available_memory_bytes()
    if need > WORKING_MEMORY_FRACTION * free:
        raise ConfigError(
            f"the compiled chunk needs {need / 2**30:.2f} GiB of working memory ({lanes} lanes learning "
            f"on algo.batch_size={batch_size} episodes each), more than {WORKING_MEMORY_FRACTION} of the "
            f"{free / 2**30:.2f} GiB free; raise runner.lane_groups or lower num_seeds, algo.batch_size or "
            "algo.length_buckets"
        )


class DeviceBackend:
    """Collects inside the compiled program: `jit(over_lanes(chunk))` over the lanes, sharded along their axis."""

    def __init__(self, setup, on_trace: Callable[[], None] = lambda: None):
        cfg, env, algo, sharding = setup.cfg, setup.env, setup.algo, setup.sharding
        chunk = chunk_for(cfg, algo, env, setup.plan.updates_per_chunk)

        def traced(runner):
            on_trace()  # runs at trace time only: counts compilations of the chunk
            return chunk(runner)

        self.lanes, self.batch_size, self.groups = local_lanes(cfg), cfg.algo.batch_size, cfg.runner.lane_groups
        if self.groups == 1:
            self._chunk = jax.jit(over_lanes(traced), donate_argnums=0, in_shardings=sharding, out_shardings=sharding)
        else:  # one program for a group of lanes, called once per group (lanes._check_lane_groups)
            grouped = in_lane_groups(over_lanes(traced), self.lanes, self.groups)
            index = NamedSharding(sharding.mesh, PartitionSpec())
            self._chunk = jax.jit(grouped, donate_argnums=0, in_shardings=(sharding, index), out_shardings=sharding)
        self._eval = jax.jit(jax.vmap(make_evaluate(algo, env, cfg.env.test_episodes)), out_shardings=sharding)
        self._compiled = None

    def compile(self, runner: RunnerState) -> float:
        """Compiles the chunk for this state's shapes; returns the seconds it took. Refuses a chunk whose
        working memory does not fit what is free once the state is allocated."""
        t0 = time.perf_counter()
        args = (runner,) if self.groups == 1 else (runner, np.int32(0))
        self._compiled = self._chunk.lower(*args).compile()
        check_working_memory(self._compiled, self.lanes // self.groups, self.batch_size)
        return time.perf_counter() - t0

    def chunk(self, runner: RunnerState) -> tuple[RunnerState, dict[str, np.ndarray]]:
        """One chunk for every lane: the new state and per-update metrics [lanes, updates] on the host."""
        assert self._compiled is not None, "compile() first"
        if self.groups == 1:
            runner, metrics = self._compiled(runner)
            return runner, gather(metrics)
        parts = []
        for g in range(self.groups):
            runner, metrics = self._compiled(runner, np.int32(g))
            parts.append(gather(metrics))
        # Group g's row i is lane i * groups + g.
        return runner, {k: np.stack([p[k] for p in parts], 1).reshape((-1,) + parts[0][k].shape[1:]) for k in parts[0]}

    def evaluate(self, runner: RunnerState, keys: jax.Array) -> dict[str, np.ndarray]:
        """Greedy return, win rate and length per lane, at each lane's env-step count."""
        return greedy_summary(gather(self._eval(runner.learner.params, keys, runner.learner.t_env)))
