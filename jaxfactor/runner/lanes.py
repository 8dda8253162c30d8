"""Lanes: the (grid point x seed) axis every driver trains along (train, evaluate, matrix tooling, tests,
experiments), with its one key scheme and its sharding.

The axis is grid-major: lane g * num_seeds + s is seed s of grid point g. Seed s of a run is seed
`cfg.seed + s` (key `jax.random.key(cfg.seed + s)`) whatever num_seeds is, and the same at every grid point,
so seeds 2 and 3 of a 4-seed run are the seeds of a 2-seed run with seed=2, and grid points differ only by
their hyperparameters.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfactor import config as config_lib
from jaxfactor.algos.base import Algorithm, HParams
from jaxfactor.config import RunConfig, RunPlan
from jaxfactor.errors import ConfigError
from jaxfactor.runner.learn import RunnerState, init_lane


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a run is built from: the config, its env, algorithm and plan, and the lanes' sharding."""

    cfg: RunConfig
    env: Any
    algo: Algorithm
    plan: RunPlan
    sharding: Any


def build(cfg: RunConfig):
    """Env, algorithm and plan for a config (no allocation yet)."""
    from jaxfactor.algos import make_algo
    from jaxfactor.envs import make_env

    env = make_env(cfg.env.kind, cfg.env.params)
    algo = make_algo(cfg.algo, env.spec, cfg.env.agent_inputs)
    return env, algo, config_lib.plan(cfg, env.spec.episode_limit)


def setup(cfg: RunConfig) -> Setup:
    s = Setup(cfg, *build(cfg), seed_sharding(cfg))
    _check_host_settings(s)
    _check_layout(s)
    _check_lane_groups(s)
    return s


def _check_layout(s: Setup) -> None:
    """Segments are collected inside the compiled program; the host collector plays whole episodes."""
    from jaxfactor.hostenvs import HostEnvFactory

    if s.cfg.runner.layout == "segments" and isinstance(s.env, HostEnvFactory):
        raise ConfigError(
            f"runner.layout=segments collects inside the compiled program, but env.kind="
            f"{s.cfg.env.kind} is a host simulator; allowed: runner.layout=episodes for host simulators"
        )


def _check_lane_groups(s: Setup) -> None:
    """Lane groups run one after another in the device backend, each split over the devices like the lanes."""
    from jaxfactor.hostenvs import HostEnvFactory

    groups, lanes, devices = s.cfg.runner.lane_groups, num_lanes(s.cfg), s.sharding.mesh.size
    if groups == 1:
        return
    if isinstance(s.env, HostEnvFactory):
        raise ConfigError(
            f"runner.lane_groups={groups} groups the lanes of the compiled chunk, but env.kind={s.cfg.env.kind} "
            "is a host simulator; allowed: runner.lane_groups=1 for host simulators"
        )
    if jax.process_count() > 1:
        raise ConfigError(
            f"runner.lane_groups={groups} runs in one process, this run spans {jax.process_count()}; allowed: 1"
        )
    if lanes % (groups * devices):
        raise ConfigError(
            f"runner.lane_groups={groups} does not split {lanes} lanes over {devices} device(s) evenly; "
            f"allowed: a divisor of {lanes // devices}"
        )


def _check_host_settings(s: Setup) -> None:
    """host.* drives simulator workers: set for a JAX env it would do nothing, so it is refused."""
    from jaxfactor.hostenvs import HOST_ENV_KINDS, HostEnvFactory

    if isinstance(s.env, HostEnvFactory):
        return
    default = config_lib.HostConfig()
    changed = [f.name for f in dataclasses.fields(default) if getattr(s.cfg.host, f.name) != getattr(default, f.name)]
    if changed:
        raise ConfigError(
            f"host.{changed[0]}={getattr(s.cfg.host, changed[0])!r} applies to host simulators only, "
            f"but env.kind={s.cfg.env.kind} runs inside the compiled program; allowed: host.* with "
            f"env kinds {', '.join(HOST_ENV_KINDS.names())}"
        )


def num_lanes(cfg: RunConfig) -> int:
    return cfg.num_seeds * len(cfg.grid)


def local_lanes(cfg: RunConfig) -> int:
    """The lanes this process computes and holds (all of them unless the run spans several processes)."""
    return num_lanes(cfg) // jax.process_count()


def seed_keys(cfg: RunConfig, stream: int | None = None, index: int = 0, blocks: int | None = None) -> jax.Array:
    """Keys of the lanes: seed s's key in each of `blocks` blocks (default: one per grid point); `stream` and
    `index` fold in a purpose (evaluation, rendering) and a counter."""
    keys = []
    for i in range(cfg.num_seeds):
        k = jax.random.key(cfg.seed + i)
        if stream is not None:
            k = jax.random.fold_in(jax.random.fold_in(k, stream), index)
        keys.append(k)
    return jnp.stack(keys * (len(cfg.grid) if blocks is None else blocks))


def grid_hparams(cfg: RunConfig) -> HParams:
    """HParams stacked over the sweep grid [G] (one point without a sweep)."""
    points = [
        HParams.from_config(dataclasses.replace(cfg.algo, **{k.split(".", 1)[1]: v for k, v in p.items()}))
        for p in cfg.grid
    ]
    return jax.tree.map(lambda *xs: jnp.stack(xs), *points)


def lane_hparams(cfg: RunConfig) -> HParams:
    """HParams of every lane [G * S]."""
    return jax.tree.map(lambda x: jnp.repeat(x, cfg.num_seeds, axis=0), grid_hparams(cfg))


def seed_sharding(cfg: RunConfig):
    """NamedSharding of the lane axis over the devices; the axis must split evenly."""
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    if cfg.num_devices is not None:
        if cfg.num_devices > len(devices):
            raise ConfigError(
                f"num_devices={cfg.num_devices} but only {len(devices)} {devices[0].platform} "
                f"device(s) are visible; allowed: 1..{len(devices)} or null (all)"
            )
        devices = devices[: cfg.num_devices]
    total = num_lanes(cfg)
    if total % len(devices):
        what = f"num_seeds={cfg.num_seeds}" + (f" x {len(cfg.grid)} grid points = {total}" if len(cfg.grid) > 1 else "")
        raise ConfigError(
            f"{what} cannot be split evenly over {len(devices)} devices; allowed: a multiple of "
            f"{len(devices)} (or set num_devices)"
        )
    return NamedSharding(Mesh(np.array(devices), ("seed",)), PartitionSpec("seed"))


def _init_fn(cfg: RunConfig, algo: Algorithm):
    segments = config_lib.segment_length(cfg)
    return jax.vmap(lambda k, hp: init_lane(algo, cfg.algo.buffer_size, k, hp, segments))


def init_lanes(cfg: RunConfig, algo: Algorithm, sharding=None) -> RunnerState:
    """Fresh state of every lane (sharded along the lane axis when `sharding` is given)."""
    from jaxfactor.runner.multihost import put

    keys, hps = seed_keys(cfg), lane_hparams(cfg)
    if sharding is not None:
        keys, hps = put(keys, sharding), put(hps, sharding)
    return jax.jit(_init_fn(cfg, algo), out_shardings=sharding)(keys, hps)


def abstract_lanes(cfg: RunConfig, algo: Algorithm, sharding=None) -> RunnerState:
    """Shapes, dtypes and shardings of `init_lanes` without allocating anything (a restore target)."""
    shapes = jax.eval_shape(_init_fn(cfg, algo), seed_keys(cfg), lane_hparams(cfg))
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding), shapes)


def grid_label(point: dict[str, float]) -> str:
    return ",".join(f"{k.split('.', 1)[1]}={v:g}" for k, v in point.items()) or "default"


def grid_blocks(cfg: RunConfig, values: dict[str, np.ndarray]) -> list[tuple[dict, dict[str, np.ndarray]]]:
    """[(grid point, {key: its num_seeds values})] from values over the lane axis."""
    S = cfg.num_seeds
    return [(p, {k: v[g * S : (g + 1) * S] for k, v in values.items()}) for g, p in enumerate(cfg.grid)]


def lane_label(cfg: RunConfig, lane: int) -> str:
    """Which run a lane is: its seed, and its grid point if any."""
    seed = f"seed {cfg.seed + lane % cfg.num_seeds}"
    return seed if len(cfg.grid) == 1 else f"{seed}, grid point {grid_label(cfg.grid[lane // cfg.num_seeds])}"
