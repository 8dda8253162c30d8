"""Typed, frozen run configuration built from the composed Hydra config.

Hydra composes `configs/`; `from_dict` turns the result into frozen dataclasses and checks every
value, raising `ConfigError` with the field name and the allowed values. Derived sizes live in
`RunPlan`, never written back into the config (DESIGN.md §2.3.14).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from jaxfactor.checks import check_type
from jaxfactor.errors import ConfigError
from jaxfactor.spec import AgentInputs

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclasses.dataclass(frozen=True)
class AlgoConfig:
    name: str
    """Registered algorithm name (configs/algo/<name>.yaml)."""
    mixer: str
    """Registered mixer name: vdn or qmix."""
    bootstrap: str
    """Bootstrap value of the TD(lambda) target: greedy (double-Q) or sarsa (stored action)."""
    double_q: bool
    """Bootstrap action from the online network (True) or from the target network (False)."""
    gamma: float
    td_lambda: float
    lr: float
    grad_clip: float
    """Global-norm gradient clipping threshold."""
    loss_scale: float
    """c in ALGORITHMS.md §1.6 (0.5 for the PyMARL2 learners)."""
    eps_start: float
    eps_finish: float
    eps_anneal_steps: int
    """Env steps over which epsilon anneals linearly from eps_start to eps_finish."""
    num_envs: int
    """Parallel environments per seed (episodes collected per update)."""
    buffer_size: int
    """Replay capacity in episodes, per seed."""
    batch_size: int
    """Episodes sampled per gradient step."""
    target_update_episodes: int
    """Hard target copy once this many episodes were collected since the last copy."""
    agent_hidden_dim: int
    mixing_embed_dim: int
    hypernet_embed_dim: int
    length_buckets: int = 4
    """Batch lengths the update is compiled for; each batch trains at the shortest one holding its longest
    episode (PyMARL2 cuts every batch to its longest episode). 1 = always the padded episode limit."""
    epochs: int = 1
    """Gradient steps per update, each on a freshly sampled batch (PyMARL2: 1; JaxMARL's NUM_EPOCHS: 8)."""
    learning_starts: int = 0
    """Env steps per seed before the first gradient step (also waits for batch_size stored rows)."""
    optimizer: str = "adam"
    """adam (PyMARL2) or radam (JaxMARL), after global-norm clipping at grad_clip."""
    extra: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    """Algorithm-specific keys (validated by the algorithm's factory)."""


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    name: str
    """Preset name (configs/env/<name>.yaml)."""
    kind: str
    """Registered environment kind: matrix or smax."""
    obs_last_action: bool
    """Append the one-hot previous action to each agent's input (ALGORITHMS.md §1.3)."""
    obs_agent_id: bool
    """Append the one-hot agent id to each agent's input."""
    t_max: int
    """Default training budget in env steps (the paper's t_max)."""
    test_interval: int
    """Default env steps between greedy evaluations."""
    test_episodes: int
    """Greedy evaluation episodes per seed."""
    params: Mapping[str, Any] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    """Kind-specific keys (e.g. payoff, map_name), validated by the environment kind."""

    @property
    def agent_inputs(self) -> AgentInputs:
        """The agent-input flags, the only part of the env config an algorithm sees."""
        return AgentInputs(obs_last_action=self.obs_last_action, obs_agent_id=self.obs_agent_id)


LOGGER_KINDS = ("console", "wandb")
WANDB_MODES = ("online", "offline", "disabled")
SWEEPABLE = {
    "lr": (0.0, None, True),
    "gamma": (0.0, 1.0, False),
    "td_lambda": (0.0, 1.0, False),
    "eps_start": (0.0, 1.0, False),
    "eps_finish": (0.0, 1.0, False),
    "eps_anneal_steps": (1, None, False),
}
"""algo.* numbers that do not change shapes (the HParams leaves a grid may vary along the seed axis), with
their allowed range (low, high, low end open): one table for the configured values and every grid value."""
LAYOUTS = ("episodes", "segments")
OPTIMIZERS = ("adam", "radam")


@dataclasses.dataclass(frozen=True)
class RunnerConfig:
    """How collected experience is laid out in the replay (README "Two storage layouts") and how lanes run."""

    layout: str = "episodes"
    """episodes: PyMARL2's, each stored row one whole episode from a reset (padded to its limit); segments:
    JaxMARL's qmix_rnn.py, each row segment_length env steps from a reset, an episode that ends restarting at
    once inside the row."""
    segment_length: int = 128
    """Env steps per stored segment (layout=segments only)."""
    lane_groups: int = 1
    """Run each chunk's lanes in this many groups in turn (lanes g, g+groups, ...): one group's working memory."""


@dataclasses.dataclass(frozen=True)
class LoggerConfig:
    kind: str
    """console (tqdm + metrics.jsonl, always on) or wandb (the same, plus a W&B run)."""
    mode: str = "offline"
    """W&B mode: online, offline or disabled (online without a login falls back to offline)."""
    project: str = "jaxfactor"
    entity: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()
    per_seed: bool = False
    """Also log every seed's series (seed<i>/...), not only the aggregates across seeds."""


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    every_steps: int | None
    """Env steps between checkpoints (rounded up to chunk boundaries); None = only the final one."""
    buffer: bool
    """Include the replay buffers (exact resume); False resumes with empty buffers."""
    max_to_keep: int
    """Periodic checkpoints kept on disk (the newest ones)."""


HOST_POOLS = ("process", "inline")
HOST_START_METHODS = ("spawn", "forkserver")


@dataclasses.dataclass(frozen=True)
class HostConfig:
    """Host simulators (env kinds that cannot be jitted: highway-env, StarCraft II, GRF); unused by JAX envs."""

    workers: int | None = None
    """Worker processes stepping the lanes x num_envs simulators; None = the machine's cores (at most one per
    simulator). More simulators than workers share workers, stepped in turn."""
    pool: str = "process"
    """process (isolated workers: crashes and hangs cost an episode) or inline (in the trainer's process)."""
    start_method: str = "spawn"
    """spawn or forkserver (never fork next to JAX)."""
    start_timeout_s: float = 300.0
    """Seconds a worker may take to start (StarCraft II's first launch is slow)."""
    reset_timeout_s: float = 300.0
    """Seconds one simulator may take to reset before its worker is killed and restarted."""
    step_timeout_s: float = 60.0
    """Seconds one simulator may take per step before its worker is killed and restarted."""
    max_consecutive_failures: int = 3
    """A simulator failing this many episodes in a row stops the run with its traceback."""


@dataclasses.dataclass(frozen=True)
class DistributedConfig:
    """One program over several processes (`jax.distributed.initialize`'s arguments). All null: a single process,
    unless the cluster's environment (SLURM, Open MPI, JAX_NUM_PROCESSES) declares several, which JAX detects."""

    coordinator_address: str | None = None
    """host:port of process 0's coordinator service."""
    num_processes: int | None = None
    process_id: int | None = None
    initialization_timeout_s: int = 300
    """Seconds to wait for every process to join."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    algo: AlgoConfig
    env: EnvConfig
    seed: int
    num_seeds: int
    total_timesteps: int
    """Env steps per seed; training stops at the first chunk boundary past it."""
    eval_every_steps: int
    log_every_steps: int
    """Env steps per compiled chunk (one host log line per chunk)."""
    run_dir: str
    progress: bool
    max_buffer_memory_fraction: float
    """Refuse to start when replay buffers would take more than this fraction of free memory."""
    num_devices: int | None = None
    """Devices the seed axis is sharded over (the first ones of jax.devices()); None = all."""
    logger: LoggerConfig = LoggerConfig(kind="console")
    checkpoint: CheckpointConfig = CheckpointConfig(every_steps=None, buffer=True, max_to_keep=2)
    host: HostConfig = HostConfig()
    runner: RunnerConfig = RunnerConfig()
    distributed: DistributedConfig = DistributedConfig()
    resume: str | None = None
    """A run_dir to continue from its latest checkpoint."""
    resume_step: int | None = None
    """With resume: the checkpoint (its chunk number under checkpoints/) to continue from; None = the newest
    readable. Newer checkpoints are set aside (renamed <step>.superseded)."""
    sweep: Mapping[str, tuple[float, ...]] = dataclasses.field(default_factory=lambda: MappingProxyType({}))
    """Grid over algo.<SWEEPABLE> riding the seed axis: {"algo.lr": (1e-3, 5e-4), ...}."""

    @property
    def grid(self) -> list[dict[str, float]]:
        """Cartesian product of the sweep values (one point, {}, without a sweep), first key slowest."""
        points: list[dict[str, float]] = [{}]
        for key, values in self.sweep.items():
            points = [{**p, key: v} for p in points for v in values]
        return points


def _fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _split(d: Mapping[str, Any], cls, extra_field: str) -> dict[str, Any]:
    known = [f for f in _fields(cls) if f != extra_field]
    missing = [k for k in known if k not in d]
    if missing:
        raise ConfigError(f"{cls.__name__} is missing key(s) {missing}")
    out = {k: d[k] for k in known}
    out[extra_field] = MappingProxyType({k: v for k, v in d.items() if k not in known})
    return out


def _typed(cls, section: str, values: dict[str, Any]) -> Any:
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    for name, value in values.items():
        t = hints[name]
        t = t if isinstance(t, str) else t.__name__
        optional = t.endswith(" | None")
        if optional and value is None:
            continue
        kind = {"str": str, "bool": bool, "int": int, "float": float}.get(t.removesuffix(" | None"))
        if kind is not None:
            values[name] = check_type(section, name, value, kind, optional)
    return cls(**values)


def from_dict(d: Mapping[str, Any]) -> RunConfig:
    """Build and validate a RunConfig from a plain (resolved) dict."""
    d = dict(d)
    algo = _typed(AlgoConfig, "algo", _split(d.pop("algo"), AlgoConfig, "extra"))
    env_values = dict(d.pop("env"))
    env_values.pop("algo_defaults", None)  # composition only: the algo section's interpolations have read it
    env = _typed(EnvConfig, "env", _split(env_values, EnvConfig, "params"))
    sections = {"algo": algo, "env": env}
    if "logger" in d:
        sections["logger"] = _logger_config(d.pop("logger"))
    if "checkpoint" in d:
        sections["checkpoint"] = _section(CheckpointConfig, "checkpoint", d.pop("checkpoint"))
    if "host" in d:
        sections["host"] = _section(HostConfig, "host", d.pop("host"))
    if "runner" in d:
        sections["runner"] = _section(RunnerConfig, "runner", d.pop("runner"))
    if "distributed" in d:
        sections["distributed"] = _section(DistributedConfig, "distributed", d.pop("distributed"))
    if "sweep" in d:
        sections["sweep"] = _sweep_config(d.pop("sweep"))
    optional = (
        "logger",
        "checkpoint",
        "host",
        "runner",
        "distributed",
        "resume",
        "resume_step",
        "sweep",
        "num_devices",
    )
    known = [f for f in _fields(RunConfig) if f not in sections]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"unknown top-level key(s) {unknown}; allowed: {', '.join(_fields(RunConfig))}")
    missing = [k for k in known if k not in d and k not in optional]
    if missing:
        raise ConfigError(f"RunConfig is missing key(s) {missing}")
    run = _typed(RunConfig, "", {**{k: d[k] for k in known if k in d}, **sections})
    from jaxfactor.validation import validate  # validation reads these dataclasses: imported late

    validate(run)
    return run


def _section(cls, section: str, values: Mapping[str, Any]) -> Any:
    values = dict(values or {})
    unknown = sorted(set(values) - set(_fields(cls)))
    if unknown:
        raise ConfigError(f"{section}.{unknown[0]} is unknown; allowed: {', '.join(_fields(cls))}")
    try:
        return _typed(cls, section, values)
    except TypeError as e:  # a required field is missing
        raise ConfigError(f"{section}: {e}") from None


def _logger_config(values: Mapping[str, Any]) -> LoggerConfig:
    values = dict(values or {})
    if "tags" in values:
        tags = values["tags"] or ()
        if isinstance(tags, str) or not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"logger.tags must be a list of strings, got {tags!r}")
        values["tags"] = tuple(tags)
    return _section(LoggerConfig, "logger", values)


def _sweep_config(values: Mapping[str, Any]) -> Mapping[str, tuple[float, ...]]:
    """{"algo": {"lr": [..] or None, ...}} -> {"algo.lr": (..), ...} (unset keys dropped)."""
    values = dict(values or {})
    if {k for k in values if not k.startswith("algo.")} - {"algo"}:
        raise ConfigError(
            f"sweep.{sorted(set(values) - {'algo'})[0]} cannot be swept; allowed: "
            + ", ".join(f"sweep.algo.{k}" for k in SWEEPABLE)
        )
    nested = dict(values.get("algo") or {})
    nested.update({k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("algo.")})  # saved form
    values = {k: v for k, v in values.items() if not k.startswith("algo.")}
    out = {}
    for key, grid in nested.items():
        if key not in SWEEPABLE:
            raise ConfigError(
                f"sweep.algo.{key} cannot be swept (it changes shapes or is not numeric); "
                f"allowed: {', '.join('sweep.algo.' + k for k in SWEEPABLE)}"
            )
        if grid is None:
            continue
        if (
            isinstance(grid, (str, bool))
            or not isinstance(grid, (list, tuple))
            or not grid
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in grid)
        ):
            raise ConfigError(
                f"sweep.algo.{key} must be a non-empty list of numbers, e.g. "
                f"sweep.algo.{key}=[0.001,0.0005]; got {grid!r}"
            )
        out[f"algo.{key}"] = tuple(float(v) for v in grid)
    return MappingProxyType(out)


INT32_MAX = 2**31 - 1


def segment_length(cfg: RunConfig) -> int | None:
    """Env steps per stored row under the segment layout; None under the episode layout."""
    return cfg.runner.segment_length if cfg.runner.layout == "segments" else None


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """Sizes derived from a config and an env spec (never written back into the config)."""

    updates_per_chunk: int
    eval_every_chunks: int
    checkpoint_every_chunks: int | None


def plan(cfg: RunConfig, episode_limit: int) -> RunPlan:
    # An update collects num_envs episodes of at most episode_limit steps (or num_envs segments of exactly
    # segment_length steps); size chunks on that bound.
    max_steps = cfg.algo.num_envs * (segment_length(cfg) or episode_limit)
    updates_per_chunk = max(1, math.ceil(cfg.log_every_steps / max_steps))
    chunk_steps = updates_per_chunk * max_steps
    eval_every_chunks = max(1, round(cfg.eval_every_steps / chunk_steps))
    every = cfg.checkpoint.every_steps
    checkpoint_every_chunks = None if every is None else max(1, math.ceil(every / chunk_steps))
    return RunPlan(updates_per_chunk, eval_every_chunks, checkpoint_every_chunks)


def to_plain(obj: Any) -> Any:
    """Dataclasses and mapping proxies to plain dicts/lists (for JSON)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config as the plain dict `from_dict` reads back (algo.extra and env.params inlined, the sweep
    nested): what config.json holds, so a saved run can be rebuilt exactly."""
    d = to_plain(cfg)
    d["algo"] = {**{k: v for k, v in d["algo"].items() if k != "extra"}, **d["algo"]["extra"]}
    d["env"] = {**{k: v for k, v in d["env"].items() if k != "params"}, **d["env"]["params"]}
    d["sweep"] = {"algo": {k.split(".", 1)[1]: v for k, v in d["sweep"].items()}}
    return d
