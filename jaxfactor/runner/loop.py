"""The run loop, shared by every collector backend: chunks, logging, greedy-evaluation cadence, checkpoints,
divergence checks and the summary. A backend (the device one in `runner/anakin.py`, a host one for
simulators that cannot be jitted) only compiles and runs chunks and evaluates; everything else lives here.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from jaxfactor import config as config_lib
from jaxfactor import validation
from jaxfactor.config import RunConfig
from jaxfactor.errors import ConfigError
from jaxfactor.runner import report
from jaxfactor.runner.guards import RunDirLock, RunInterrupted, StopOnSignal
from jaxfactor.runner.lanes import Setup, grid_blocks, grid_label, lane_label, num_lanes, seed_keys, setup
from jaxfactor.runner.multihost import any_process, gather, is_primary, process_count, put, say
from jaxfactor.runner.preflight import check_memory, check_run_dir, plain

EVAL_STREAM = 0x5EED  # folded into the seeds' keys for greedy evaluation during training


class Backend(Protocol):
    def compile(self, runner: Any) -> float: ...

    def chunk(self, runner: Any) -> tuple[Any, dict[str, np.ndarray]]: ...

    def evaluate(self, runner: Any, keys: Any) -> dict[str, np.ndarray]: ...


class Callback:
    """Hooks into `run` for tests and experiments; every method is optional."""

    def on_trace(self) -> None:
        """The chunk program is being traced (once per compilation)."""

    def on_start(self, runner: Any, backend: Backend) -> None:
        """Before the first chunk, with the state training starts from."""

    def on_chunk(self, chunk: int, record: dict[str, Any]) -> bool:
        """After each chunk's log line; return True to stop there (the run still saves and reports)."""
        return False

    def on_checkpoint(self, step: int, checkpointer: Any) -> None:
        """After a checkpoint was handed to the (asynchronous) checkpointer."""


def restore_lanes(ckpt, s: Setup, step: int | None = None):
    """(runner, meta) of a checkpoint, read into the lanes' abstract shapes and shardings; empty replay buffers
    only when the checkpoint was saved without them."""
    import jax

    from jaxfactor import buffers
    from jaxfactor.runner.lanes import abstract_lanes

    abstract = abstract_lanes(s.cfg, s.algo, s.sharding)
    fields, meta = ckpt.restore(abstract, step)
    if "buffer" not in fields:
        capacity, segments = s.cfg.algo.buffer_size, config_lib.segment_length(s.cfg)
        fields["buffer"] = jax.jit(
            jax.vmap(lambda _: buffers.init(s.algo.spec, capacity, segments)), out_shardings=s.sharding
        )(put(np.arange(num_lanes(s.cfg)), s.sharding))
    return abstract.replace(**fields), meta


def run(
    cfg: RunConfig,
    *,
    backend: Callable[..., Backend] | None = None,
    callbacks: Sequence[Callback] = (),
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Train, evaluate and write outputs; returns the summary dict. `backend(setup, on_trace)` builds the
    collector (default: the device backend)."""
    from jaxfactor.runner.multihost import initialize

    initialize(cfg.distributed)  # a job started by a launcher (submitit) reaches here without the CLI's checks
    s = setup(cfg)
    check_memory(s)
    for warning in validation.inert_settings(cfg):
        say(f"jaxfactor: warning: {warning}", file=sys.stderr, flush=True)
    run_dir = Path(cfg.run_dir)
    check_run_dir(cfg)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"run_dir={run_dir} cannot be created ({e.strerror}); allowed: a writable directory"
        ) from None
    with contextlib.ExitStack() as held:
        refused = None
        try:  # process 0 holds the lock for every process of the program
            if is_primary():
                held.enter_context(RunDirLock(run_dir))
        except ConfigError as e:
            refused = e
        if any_process(refused is not None):  # the others stop with process 0, not at their first collective
            raise refused or ConfigError(
                f"run_dir={run_dir} is in use by another run (process 0 found its lock); allowed: another run_dir"
            )
        check_run_dir(cfg)  # again, now that no other run can start in run_dir
        return _train(s, run_dir, backend, callbacks, overrides)


def _train(
    s: Setup,
    run_dir: Path,
    backend: Callable[..., Backend] | None,
    callbacks: Sequence[Callback],
    overrides: list[str] | None,
) -> dict[str, Any]:
    cfg = s.cfg
    if is_primary():
        (run_dir / "config.json").write_text(json.dumps(config_lib.to_dict(cfg), indent=2))
        if overrides is not None and cfg.resume is None:
            (run_dir / "overrides.json").write_text(json.dumps(overrides))
    collector = (backend or default_backend(s))(s, lambda: [c.on_trace() for c in callbacks])
    try:
        return _train_with(s, run_dir, collector, callbacks)
    finally:
        getattr(collector, "close", lambda: None)()  # host simulators' workers


def default_backend(s: Setup) -> Callable[..., Backend]:
    """The host backend for simulators that cannot be jitted, else the device backend."""
    from jaxfactor.hostenvs import HostEnvFactory

    if isinstance(s.env, HostEnvFactory):
        from jaxfactor.runner.host import HostBackend

        return HostBackend
    from jaxfactor.runner.anakin import DeviceBackend

    return DeviceBackend


def _train_with(s: Setup, run_dir: Path, collector: Backend, callbacks: Sequence[Callback]) -> dict[str, Any]:
    from jaxfactor.checkpoint import Checkpointer
    from jaxfactor.loggers import RunLogger, SilentLogger
    from jaxfactor.runner.lanes import init_lanes

    cfg, env, algo, plan, sharding = s.cfg, s.env, s.algo, s.plan, s.sharding
    total = num_lanes(cfg)
    host_stats = getattr(collector, "stats", lambda: None)

    t_start = time.perf_counter()
    ckpt = Checkpointer(run_dir, cfg.checkpoint.max_to_keep, cfg.checkpoint.buffer)
    chunk_idx, train_s, wandb_id, diverged = 0, 0.0, None, {}
    if cfg.resume is not None:
        if cfg.resume_step is not None:
            ckpt.set_aside_after(cfg.resume_step)  # the continuing run saves those chunks again
        runner, meta = restore_lanes(ckpt, s, cfg.resume_step)
        chunk_idx, train_s, wandb_id = meta["chunk"], meta["train_s"], meta.get("wandb_run_id")
        diverged = {int(lane): info for lane, info in meta.get("diverged_lanes", {}).items()}
        if "host" in meta and hasattr(collector, "restore_stats"):
            collector.restore_stats(meta["host"])  # crash counts continue across the resume
        say(
            f"resumed {run_dir} at chunk {chunk_idx} ({np.mean(meta['env_steps']):.0f} env steps per seed)"
            + ("" if meta["has_buffer"] else "; replay buffers start empty (saved with checkpoint.buffer=false)")
        )
    else:
        runner = init_lanes(cfg, algo, sharding)
    grid = f" x {len(cfg.grid)} grid points" if len(cfg.grid) > 1 else ""
    processes = f" over {process_count()} processes" if process_count() > 1 else ""
    say(
        f"compiling {algo.name} on {cfg.env.name}: {total} lanes ({cfg.num_seeds} seeds{grid}){processes}, "
        f"{plan.updates_per_chunk} updates of {cfg.algo.num_envs} "
        + (f"segments of {cfg.runner.segment_length} steps" if config_lib.segment_length(cfg) else "episodes")
        + " per chunk",
        flush=True,
    )
    compile_s = collector.compile(runner)
    logger = (
        RunLogger(cfg, run_dir, resume_chunk=chunk_idx if cfg.resume is not None else None, wandb_run_id=wandb_id)
        if is_primary()
        else SilentLogger()
    )

    def run_eval(index: int) -> dict[str, np.ndarray]:
        return collector.evaluate(runner, put(seed_keys(cfg, EVAL_STREAM, index), sharding))

    def save(step: int) -> None:
        if ckpt.save(
            step,
            runner,
            {
                "chunk": step,
                "train_s": train_s,
                "env_steps": env_steps.tolist(),
                "wandb_run_id": logger.run_id,
                "config": plain(cfg),
                "diverged_lanes": report.lanes_json(diverged),
                **({"host": host} if (host := host_stats()) else {}),
            },
        ):
            for c in callbacks:
                c.on_checkpoint(step, ckpt)

    for c in callbacks:
        c.on_start(runner, collector)
    bar = tqdm(
        total=cfg.total_timesteps,
        unit="step",
        disable=not (cfg.progress and is_primary()),
        dynamic_ncols=True,
        desc=f"{algo.name} {cfg.env.name} x{total}",
    )
    env_steps = np.asarray(gather(runner.learner.t_env), np.float64)
    bar.update(int(min(env_steps.mean(), cfg.total_timesteps)))  # a resume starts where its checkpoint was
    last_eval: dict[str, np.ndarray] = {}
    with StopOnSignal() as stop:
        while env_steps.min() < cfg.total_timesteps and not any_process(stop.signum is not None):
            t0 = time.perf_counter()
            runner, m = collector.chunk(runner)
            train_s += time.perf_counter() - t0
            chunk_idx += 1
            for lane, keys in report.nonfinite_losses(m).items():
                if lane not in diverged:  # once per lane, loudly: its later metrics and results are NaN
                    diverged[lane] = {"chunk": chunk_idx, "losses": keys}
                    say(
                        f"jaxfactor: lane {lane} ({lane_label(cfg, lane)}) diverged in chunk {chunk_idx}: "
                        f"{', '.join(keys)} not finite; it is left out of every aggregate and result",
                        file=sys.stderr,
                        flush=True,
                    )
            summary = report.chunk_summary(m)
            env_steps = summary["env_steps"].astype(np.float64)
            record: dict[str, Any] = {
                "chunk": chunk_idx,
                "env_steps": float(env_steps.mean()),
                "perf/steps_per_s": float(env_steps.sum() / train_s),
                "perf/compile_s": compile_s,
            }
            if chunk_idx % plan.eval_every_chunks == 0 or env_steps.min() >= cfg.total_timesteps:
                last_eval = run_eval(chunk_idx)
                summary.update(last_eval)
            healthy = ~report.diverged_mask(diverged, total)
            record["aggregate"] = report.aggregates(summary, healthy)
            if len(cfg.grid) > 1:
                record["grid"] = {
                    grid_label(p): report.aggregates(block, lanes["ok"])
                    for (p, block), (_, lanes) in zip(grid_blocks(cfg, summary), grid_blocks(cfg, {"ok": healthy}))
                }
            record["per_seed"] = {k: v.tolist() for k, v in summary.items()}
            logger.log(record)
            bar.update(int(min(env_steps.mean(), cfg.total_timesteps) - bar.n))
            bar.set_postfix(
                report.progress_postfix(summary, last_eval, record["perf/steps_per_s"], env.spec.has_win_flag)
            )
            if plan.checkpoint_every_chunks and chunk_idx % plan.checkpoint_every_chunks == 0:
                save(chunk_idx)
            if any([c.on_chunk(chunk_idx, record) for c in callbacks]):
                break
        bar.close()
        save(chunk_idx)  # the final state: `jaxfactor.evaluate` and exact continuation read it
        ckpt.close()  # waits for the writes, also when a signal asked to stop
    if any_process(stop.signum is not None):
        logger.close()
        signum = stop.signum or signal.SIGTERM  # another process's signal stopped this one
        raise RunInterrupted(
            signum,
            f"interrupted at {env_steps.mean():.0f} env steps per seed (chunk "
            f"{chunk_idx}, checkpointed); continue with resume={run_dir}",
        )
    wall_s = time.perf_counter() - t_start

    final = run_eval(10**6)
    is_diverged = report.diverged_mask(diverged, total)
    result: dict[str, Any] = {
        "algo": algo.name,
        "env": cfg.env.name,
        "num_seeds": cfg.num_seeds,
        "seed": cfg.seed,
        "env_steps": float(env_steps.mean()),
        "env_steps_per_seed": env_steps.tolist(),
        "updates_per_seed": np.asarray(gather(runner.learner.num_updates)).tolist(),  # gradient steps taken
        "wall_s": wall_s,
        "compile_s": compile_s,
        "train_s": train_s,
        "steps_per_s": float(env_steps.sum() / train_s) if train_s else 0.0,
        "chunks": chunk_idx,
        "devices": len(sharding.mesh.devices.flat),
        "final": report.final_stats(final, env.spec.has_win_flag, is_diverged),
        "diverged_lanes": report.lanes_json(diverged),
        "all_lanes_diverged": bool(is_diverged.all()),
    }
    if (host := host_stats()) is not None:  # one call: summing counts over processes is a collective
        result["host"] = host
    if len(cfg.grid) > 1:
        result["grid"] = report.ranked_grid(
            [
                {"point": p, "label": grid_label(p), **report.final_stats(block, env.spec.has_win_flag, lanes["d"])}
                for (p, block), (_, lanes) in zip(grid_blocks(cfg, final), grid_blocks(cfg, {"d": is_diverged}))
            ]
        )
    if (env_report := report.env_report(cfg)) is not None:
        result[env_report.key] = env_report.summarise(
            env, algo, gather(runner.learner.params), float(env_steps.min()), is_diverged
        )
    if process_count() > 1:
        result["processes"] = process_count()
    if is_primary():
        (run_dir / "summary.json").write_text(json.dumps(result, indent=2))
    logger.log_summary(result)
    logger.close()
    if is_primary():
        report.print_result(cfg, result, run_dir)
    return result
