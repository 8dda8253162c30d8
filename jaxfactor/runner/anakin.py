"""The one device training loop: `chunk` = scan over updates of rollout -> store -> learn -> reduce,
written for one seed; `jit(vmap(...))` over seeds happens in `train.py` (DESIGN.md §2.3.11).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from jaxfactor import buffers
from jaxfactor.algos.base import Algorithm, HParams, LearnerState
from jaxfactor.envs.base import JaxEnv
from jaxfactor.rl.policies import linear_epsilon
from jaxfactor.runner.rollout import rollout


@struct.dataclass
class RunnerState:
    learner: LearnerState
    buffer: buffers.BufferState
    key: jax.Array
    env_steps: jax.Array  # transitions collected so far (t_env)
    episodes: jax.Array


def init_runner(algo: Algorithm, env: JaxEnv, buffer_size: int, key: jax.Array, hp: HParams | None = None
                ) -> RunnerState:
    """Fresh runner for one seed; `hp` overrides the config's hyperparameters (one grid point of a sweep)."""
    k_learner, k_run = jax.random.split(key)
    return RunnerState(learner=algo.init(k_learner, hp), buffer=buffers.init(env.spec, buffer_size), key=k_run,
                       env_steps=jnp.array(0, jnp.int32), episodes=jnp.array(0, jnp.int32))


def make_chunk(algo: Algorithm, env: JaxEnv, num_envs: int, batch_size: int, num_updates: int
               ) -> Callable[[RunnerState], tuple[RunnerState, dict]]:
    """chunk(runner) -> (runner, metrics [num_updates]) for one seed; no host round-trips inside."""

    def update_step(runner: RunnerState, _):
        key, k_roll, k_sample, k_update = jax.random.split(runner.key, 4)
        learner = runner.learner
        hp = learner.hp
        # t_env is frozen for a whole rollout (§13 item 7).
        epsilon = linear_epsilon(runner.env_steps.astype(jnp.float32), hp.eps_start, hp.eps_finish,
                                 hp.eps_anneal_steps)
        episodes, stats = rollout(algo, env, learner.params, k_roll, num_envs, epsilon, greedy=False,
                                  t_env=runner.env_steps)
        buffer = buffers.add(runner.buffer, episodes)
        env_steps = runner.env_steps + jnp.sum(stats["length"])
        learner = learner.replace(episodes_since_target=learner.episodes_since_target + num_envs, t_env=env_steps)

        def learn(learner):
            return algo.update(learner, buffers.sample(buffer, k_sample, batch_size), k_update)

        def skip(learner):
            shapes = jax.eval_shape(learn, learner)[1]
            return learner, jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

        learning = buffers.can_sample(buffer, batch_size)
        learner, train_metrics = jax.lax.cond(learning, learn, skip, learner)
        metrics = {**{f"train/{k}": v for k, v in train_metrics.items()},
                   "train/learning": learning.astype(jnp.float32),
                   "rollout/return": jnp.mean(stats["return"]), "rollout/win_rate": jnp.mean(stats["won"]),
                   "rollout/length": jnp.mean(stats["length"].astype(jnp.float32)), "rollout/epsilon": epsilon,
                   "env_steps": env_steps}
        runner = runner.replace(learner=learner, buffer=buffer, key=key, env_steps=env_steps,
                                episodes=runner.episodes + num_envs)
        return runner, metrics

    def chunk(runner: RunnerState) -> tuple[RunnerState, dict]:
        return jax.lax.scan(update_step, runner, None, length=num_updates)

    return chunk


def make_evaluate(algo: Algorithm, env: JaxEnv, num_episodes: int) -> Callable:
    """evaluate(learner_params, key, t_env) -> greedy episode stats [num_episodes] (epsilon 0), on fresh
    envs reset at learner step t_env."""

    def evaluate(params, key, t_env=None):
        _, stats = rollout(algo, env, params, key, num_episodes, jnp.float32(0.0), greedy=True, t_env=t_env)
        return stats

    return evaluate
