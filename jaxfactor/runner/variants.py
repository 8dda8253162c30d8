"""Training over env variants: one algorithm on G versions of an env that differ only in array parameters
(payoff tables, reward scales, ...) x S seeds, in ONE compiled program.

Lanes are variant-major (lane g * S + s is seed s of variant g) and seed s has the same key in every variant
(the key scheme of `runner/lanes.py`), so variants differ only by their parameters. The parameters are a
vmapped input: G games cost one compilation and share the vector units. Research studies build on it
(experiments/matrix_tables.py: matrix games, permuted and shifted payoffs).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfactor.algos import make_algo
from jaxfactor.algos.base import Algorithm
from jaxfactor.config import RunConfig, segment_length
from jaxfactor.envs.base import JaxEnv
from jaxfactor.runner.anakin import chunk_for
from jaxfactor.runner.lanes import seed_keys
from jaxfactor.runner.learn import RunnerState, init_lane, over_lanes

Probe = Callable[[Algorithm, JaxEnv, RunnerState], Any]
"""(algo, env variant, trained lane) -> what a study reads from a lane (a pytree of arrays)."""


def train_env_variants(
    cfg: RunConfig,
    make_env: Callable[[Any], JaxEnv],
    env_params: Any,
    seeds_per_variant: int,
    updates: int,
    probe: Probe,
    points: int | None = None,
) -> dict[str, Any]:
    """Train `seeds_per_variant` seeds on every variant for `updates` updates (the run's algo settings; no
    total_timesteps stop) and probe each lane.

    `env_params`: a pytree with a leading variant axis [G, ...]; `make_env(params of one variant)` must build
    the env from concrete arrays (the first variant gives the spec every variant shares) and from traced ones.
    Returns {"probe", "metrics" (the last update's), "env_steps"}, each [G, S, ...]; with `points`, probed after
    every updates // points updates, each [G, S, P, ...]."""
    G = jax.tree.leaves(env_params)[0].shape[0]
    S = seeds_per_variant
    spec = make_env(jax.tree.map(lambda x: x[0], env_params)).spec
    algo = make_algo(cfg.algo, spec, cfg.env.agent_inputs)
    if points is not None and (points < 1 or updates % points):
        raise ValueError(f"updates={updates} must split into points={points} equal parts")
    per_point = updates if points is None else updates // points

    def lane(key, params):
        env = make_env(params)
        chunk = chunk_for(cfg, algo, env, per_point, budget=False)

        def point(runner, _):
            runner, metrics = chunk(runner)
            last = jax.tree.map(lambda x: x[-1], metrics)
            return runner, {"probe": probe(algo, env, runner), "metrics": last, "env_steps": runner.learner.t_env}

        runner = init_lane(algo, cfg.algo.buffer_size, key, segment_length=segment_length(cfg))
        if points is None:
            return point(runner, None)[1]
        return jax.lax.scan(point, runner, None, length=points)[1]

    keys = seed_keys(dataclasses.replace(cfg, num_seeds=S), blocks=G)  # seed s: the same key in every variant
    lane_params = jax.tree.map(lambda x: jnp.repeat(jnp.asarray(x), S, axis=0), env_params)
    out = jax.device_get(jax.jit(over_lanes(lane))(keys, lane_params))
    return jax.tree.map(lambda x: np.asarray(x).reshape((G, S) + np.shape(x)[1:]), out)
