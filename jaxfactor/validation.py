"""Cross-field checks of a typed `RunConfig` (`validate`, one-line errors before anything compiles) and the
warnings for settings that leave a component inert (`inert_settings`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxfactor.checks import check_range
from jaxfactor.config import (
    HOST_POOLS,
    HOST_START_METHODS,
    INT32_MAX,
    LAYOUTS,
    LOGGER_KINDS,
    OPTIMIZERS,
    SWEEPABLE,
    WANDB_MODES,
    HostConfig,
    RunConfig,
    RunnerConfig,
)
from jaxfactor.errors import ConfigError


def check_int32(section: str, obj: Any) -> None:
    """Counters and sizes reach jitted int32 arithmetic (env steps, episodes, seeds): larger values would overflow
    there, so every integer field is refused beyond int32 up front."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT32_MAX:
            raise ConfigError(
                f"{section}{f.name}={value} is out of range; allowed: at most {INT32_MAX} (int32 counters)"
            )


def validate(cfg: RunConfig) -> None:
    a = cfg.algo
    for section, obj in (
        ("", cfg),
        ("algo.", a),
        ("env.", cfg.env),
        ("checkpoint.", cfg.checkpoint),
        ("host.", cfg.host),
        ("runner.", cfg.runner),
    ):
        check_int32(section, obj)
    for name, value in a.extra.items():
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT32_MAX:
            raise ConfigError(f"algo.{name}={value} is out of range; allowed: at most {INT32_MAX} (int32 counters)")
    if cfg.seed + cfg.num_seeds - 1 > INT32_MAX:
        raise ConfigError(f"seed={cfg.seed} is out of range; allowed: seed + num_seeds - 1 at most {INT32_MAX}")
    check_range("num_seeds", cfg.num_seeds, 1)
    if cfg.num_devices is not None:
        check_range("num_devices", cfg.num_devices, 1)
    check_range("total_timesteps", cfg.total_timesteps, 1)
    check_range("eval_every_steps", cfg.eval_every_steps, 1)
    check_range("log_every_steps", cfg.log_every_steps, 1)
    check_range("max_buffer_memory_fraction", cfg.max_buffer_memory_fraction, 0.0, 1.0, lo_open=True)
    for point in cfg.grid:  # the configured values ({} without a sweep) and every grid point
        swept = dataclasses.replace(a, **{k.split(".", 1)[1]: v for k, v in point.items()})
        for name, (lo, hi, lo_open) in SWEEPABLE.items():
            field = f"sweep.algo.{name}" if f"algo.{name}" in point else f"algo.{name}"
            check_range(field, getattr(swept, name), lo, hi, lo_open=lo_open)
        if swept.eps_finish > swept.eps_start:  # epsilon anneals down; equal values keep it constant
            where = f" at grid point {point}" if point else ""
            raise ConfigError(
                f"algo.eps_finish={swept.eps_finish} > algo.eps_start={swept.eps_start}{where}; "
                "allowed: eps_finish <= eps_start (equal for a constant epsilon)"
            )
    check_range("algo.grad_clip", a.grad_clip, 0.0, lo_open=True)
    check_range("algo.loss_scale", a.loss_scale, 0.0, lo_open=True)
    for name in (
        "num_envs",
        "buffer_size",
        "batch_size",
        "target_update_episodes",
        "agent_hidden_dim",
        "mixing_embed_dim",
        "hypernet_embed_dim",
        "length_buckets",
        "epochs",
    ):
        check_range(f"algo.{name}", getattr(a, name), 1)
    check_range("algo.learning_starts", a.learning_starts, 0)
    if a.optimizer not in OPTIMIZERS:
        raise ConfigError(f"algo.optimizer='{a.optimizer}' is unknown; allowed: {', '.join(OPTIMIZERS)}")
    if cfg.runner.layout not in LAYOUTS:
        raise ConfigError(f"runner.layout='{cfg.runner.layout}' is unknown; allowed: {', '.join(LAYOUTS)}")
    check_range("runner.segment_length", cfg.runner.segment_length, 1)
    check_range("runner.lane_groups", cfg.runner.lane_groups, 1)
    if a.batch_size > a.buffer_size:
        raise ConfigError(
            f"algo.batch_size={a.batch_size} exceeds algo.buffer_size={a.buffer_size}; "
            "allowed: batch_size <= buffer_size"
        )
    if a.bootstrap not in ("greedy", "sarsa"):
        raise ConfigError(f"algo.bootstrap='{a.bootstrap}' is unknown; allowed: greedy, sarsa")
    if cfg.logger.kind not in LOGGER_KINDS:
        raise ConfigError(f"logger.kind='{cfg.logger.kind}' is unknown; allowed: {', '.join(LOGGER_KINDS)}")
    if cfg.logger.mode not in WANDB_MODES:
        raise ConfigError(f"logger.mode='{cfg.logger.mode}' is unknown; allowed: {', '.join(WANDB_MODES)}")
    if cfg.checkpoint.every_steps is not None:
        check_range("checkpoint.every_steps", cfg.checkpoint.every_steps, 1)
    check_range("checkpoint.max_to_keep", cfg.checkpoint.max_to_keep, 1)
    if cfg.resume_step is not None:
        if cfg.resume is None:
            raise ConfigError(
                f"step={cfg.resume_step} picks the checkpoint a resume continues from; allowed: with resume=<run_dir>"
            )
        check_range("step", cfg.resume_step, 1)
    check_range("env.t_max", cfg.env.t_max, 1)
    _validate_host(cfg.host)
    _validate_distributed(cfg)
    check_range("env.test_interval", cfg.env.test_interval, 1)
    check_range("env.test_episodes", cfg.env.test_episodes, 1)


def _validate_host(h: HostConfig) -> None:
    if h.workers is not None:
        check_range("host.workers", h.workers, 1)
    for name, allowed in (("pool", HOST_POOLS), ("start_method", HOST_START_METHODS)):
        if getattr(h, name) not in allowed:
            raise ConfigError(f"host.{name}='{getattr(h, name)}' is unknown; allowed: {', '.join(allowed)}")
    for name in ("start_timeout_s", "reset_timeout_s", "step_timeout_s"):
        check_range(f"host.{name}", getattr(h, name), 0.0, lo_open=True)
    check_range("host.max_consecutive_failures", h.max_consecutive_failures, 1)


def _validate_distributed(cfg: RunConfig) -> None:
    d = cfg.distributed
    explicit = {
        "coordinator_address": d.coordinator_address,
        "num_processes": d.num_processes,
        "process_id": d.process_id,
    }
    given = [k for k, v in explicit.items() if v is not None]
    if given and len(given) < len(explicit):
        missing = next(k for k in explicit if explicit[k] is None)
        raise ConfigError(
            f"distributed.{missing} is null but distributed.{given[0]} is set; allowed: all of "
            "distributed.coordinator_address, num_processes, process_id, or none of them (a single "
            "process, or what the cluster's environment declares)"
        )
    check_range("distributed.initialization_timeout_s", d.initialization_timeout_s, 1)
    if d.num_processes is None:
        return
    check_range("distributed.num_processes", d.num_processes, 1)
    check_range("distributed.process_id", d.process_id, 0, d.num_processes - 1)
    if ":" not in d.coordinator_address:
        raise ConfigError(
            f"distributed.coordinator_address={d.coordinator_address!r} has no port; allowed: "
            "host:port of process 0 (e.g. localhost:12355)"
        )
    if d.num_processes > 1 and cfg.num_devices is not None:
        raise ConfigError(
            f"num_devices={cfg.num_devices} picks devices of process 0 only; allowed: null (every "
            f"process's devices) with distributed.num_processes={d.num_processes}"
        )


def inert_settings(cfg: RunConfig) -> list[str]:
    """Settings that leave a component doing nothing over this run's budget: warned about, one line each, before
    anything compiles. (An epsilon schedule longer than the run is not among them: it still explores as
    configured, and PyMARL2's matrix games do exactly that, 100k of annealing in a 50k run.)"""
    warmup, total = cfg.algo.extra.get("pow_warmup_steps"), cfg.total_timesteps
    warnings = []
    if warmup is not None and warmup >= total:
        warnings.append(
            f"algo.pow_warmup_steps={warmup} >= total_timesteps={total}: POW's weighting never switches "
            "on (the run trains its unweighted mixer); lower algo.pow_warmup_steps"
        )
    if cfg.algo.learning_starts >= total:
        warnings.append(
            f"algo.learning_starts={cfg.algo.learning_starts} >= total_timesteps={total}: the run never "
            "learns; lower algo.learning_starts"
        )
    segments = cfg.runner.layout == "segments"
    if segments and cfg.algo.length_buckets > 1:
        warnings.append(
            f"algo.length_buckets={cfg.algo.length_buckets} does nothing with runner.layout=segments "
            "(every slot of a segment holds an env step, there is no padding to cut); set 1"
        )
    if not segments and cfg.runner.segment_length != RunnerConfig.segment_length:
        warnings.append(
            f"runner.segment_length={cfg.runner.segment_length} does nothing with runner.layout="
            f"{cfg.runner.layout}; set runner.layout=segments to store segments"
        )
    return warnings
