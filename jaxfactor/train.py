"""`python -m jaxfactor.train algo=<name> env=<name> [num_seeds=N] [key=value ...]`

Trains `num_seeds` independent seeds in one compiled program: `jit(vmap(chunk))` over seeds, the
host looping over chunks to log, evaluate greedily and report. Writes to `run_dir`: config.yaml,
metrics.jsonl and summary.json.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from jaxfactor import config as config_lib
from jaxfactor.config import CONFIG_DIR, RunConfig
from jaxfactor.errors import ConfigError


def build(cfg: RunConfig):
    """Env, algorithm and plan for a config (no allocation yet)."""
    from jaxfactor.algos import make_algo
    from jaxfactor.envs import make_env

    env = make_env(cfg.env.kind, cfg.env.params)
    algo = make_algo(cfg.algo, cfg.env, env.spec)
    plan = config_lib.plan(cfg, env.spec.episode_limit)
    return env, algo, plan


def _aggregate(values: np.ndarray) -> dict[str, float]:
    """Across seeds: mean, IQM (mean of the middle 50%), min, max."""
    v = np.sort(np.asarray(values, np.float64))
    lo, hi = int(np.floor(0.25 * len(v))), int(np.ceil(0.75 * len(v)))
    return {"mean": float(v.mean()), "iqm": float(v[lo:hi].mean() if hi > lo else v.mean()),
            "min": float(v.min()), "max": float(v.max())}


def _chunk_summary(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """[S, U] per-update metrics -> [S] per chunk (train metrics averaged over learning updates)."""
    out = {}
    for k, v in metrics.items():
        if k == "env_steps":
            out[k] = v[:, -1]
        elif k.startswith("train/") and k != "train/learning":
            with np.errstate(all="ignore"):
                out[k] = np.nanmean(np.where(np.isfinite(v), v, np.nan), axis=1) if np.isfinite(v).any() else \
                    np.full(v.shape[0], np.nan)
        else:
            out[k] = v.mean(axis=1)
    return out


def nonfinite_losses(metrics: dict[str, np.ndarray]) -> dict[int, list[str]]:
    """Lanes (seeds, or seed x grid point) whose loss went NaN/inf on an update that learned, with the loss
    names. [S, U] per-update metrics; NaN before learning starts is the runner's placeholder, not a failure."""
    learning = np.asarray(metrics["train/learning"]) > 0
    out: dict[int, list[str]] = {}
    for key, values in sorted(metrics.items()):
        if key.startswith("train/") and key.endswith("/loss"):
            for lane in np.flatnonzero((learning & ~np.isfinite(values)).any(axis=1)):
                out.setdefault(int(lane), []).append(key)
    return out


def _label(actions: Any) -> str:
    return "(" + ",".join(chr(ord("A") + int(a)) for a in actions) + ")"


def format_matrix_report(payoff: np.ndarray, tables: dict[str, np.ndarray]) -> str:
    """Readable learned joint tables (2-agent games as grids; n-agent as a flat listing)."""
    lines = []
    S = tables["q_tot"].shape[0]
    n = payoff.ndim
    best = np.unravel_index(np.argmax(payoff), payoff.shape)
    lines.append(f"payoff (rows: agent 0, columns: agent 1); optimum {_label(best)} = {payoff.max():g}")
    hits = sum(payoff[tuple(g)] == payoff.max() for g in tables["greedy"])
    lines.append(f"{hits}/{S} seeds act greedily on an optimal joint action")
    if n == 2:
        lines.append(np.array2string(payoff, precision=2, suppress_small=True))
    for s in range(S):
        g = tables["greedy"][s]
        q = tables["q_tot"][s]
        lines.append(f"seed {s}: greedy joint action {_label(g)}  payoff there {payoff[tuple(g)]:g}  "
                     f"Q_tot there {q[tuple(g)]:.2f}")
        if n == 2:
            lines.append("  learned Q_tot:\n  " + np.array2string(q, precision=2, suppress_small=True)
                         .replace("\n", "\n  "))
        for i in range(n):
            lines.append(f"  utilities Q_{i}: " + np.array2string(tables["utilities"][s][i], precision=2,
                                                                      suppress_small=True))
    return "\n".join(lines)


def grid_hparams(cfg: RunConfig):
    """HParams stacked over the sweep grid [G] (one point without a sweep)."""
    import jax

    from jaxfactor.algos.base import HParams

    points = [HParams.from_config(dataclasses.replace(cfg.algo, **{k.split(".", 1)[1]: v for k, v in p.items()}))
              for p in cfg.grid]
    return jax.tree.map(lambda *xs: jax.numpy.stack(xs), *points)


def grid_label(point: dict[str, float]) -> str:
    return ",".join(f"{k.split('.', 1)[1]}={v:g}" for k, v in point.items()) or "default"


def grid_blocks(cfg: RunConfig, values: dict[str, np.ndarray]) -> list[tuple[dict, dict[str, np.ndarray]]]:
    """[(grid point, {key: its num_seeds values})] from values over the grid-major (grid x seed) axis."""
    S = cfg.num_seeds
    return [(p, {k: v[g * S:(g + 1) * S] for k, v in values.items()}) for g, p in enumerate(cfg.grid)]


def lane_label(cfg: RunConfig, lane: int) -> str:
    """Which run a lane of the grid-major (grid x seed) axis is: its seed, and its grid point if any."""
    seed = f"seed {cfg.seed + lane % cfg.num_seeds}"
    return seed if len(cfg.grid) == 1 else f"{seed}, grid point {grid_label(cfg.grid[lane // cfg.num_seeds])}"


def greedy_stats(eval_fn, runner, keys) -> dict[str, np.ndarray]:
    """Per-(grid point, seed) greedy return, win rate and length: `eval_fn` is jit(vmap(make_evaluate))."""
    import jax

    stats = jax.device_get(eval_fn(runner.learner.params, keys, runner.env_steps))
    return {"eval/return": stats["return"].mean(1), "eval/win_rate": stats["won"].mean(1),
            "eval/length": stats["length"].mean(1)}


def seed_sharding(cfg: RunConfig):
    """NamedSharding of the (grid x seed) axis over the devices; the axis must split evenly."""
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    devices = jax.devices()
    if cfg.num_devices is not None:
        if cfg.num_devices > len(devices):
            raise ConfigError(f"num_devices={cfg.num_devices} but only {len(devices)} {devices[0].platform} "
                              f"device(s) are visible; allowed: 1..{len(devices)} or null (all)")
        devices = devices[:cfg.num_devices]
    total = cfg.num_seeds * len(cfg.grid)
    if total % len(devices):
        what = f"num_seeds={cfg.num_seeds}" + (f" x {len(cfg.grid)} grid points = {total}" if len(cfg.grid) > 1 else "")
        raise ConfigError(f"{what} cannot be split evenly over {len(devices)} devices; allowed: a multiple of "
                          f"{len(devices)} (or set num_devices)")
    return NamedSharding(Mesh(np.array(devices), ("seed",)), PartitionSpec("seed"))


def seed_keys(cfg: RunConfig, stream: int | None = None, index: int = 0):
    """Keys of the (grid point, seed) axis: seed i of a run is seed `cfg.seed + i`, whatever num_seeds is
    (so seeds 2 and 3 of a 4-seed run are the seeds of a 2-seed run with seed=2). `stream`/`index` fold
    in a purpose (evaluation, rendering) and a counter."""
    import jax

    keys = []
    for i in range(cfg.num_seeds):
        k = jax.random.key(cfg.seed + i)
        if stream is not None:
            k = jax.random.fold_in(jax.random.fold_in(k, stream), index)
        keys.append(k)
    return jax.numpy.stack(keys * len(cfg.grid))


def initial_runner(cfg: RunConfig, env, algo, sharding):
    """Fresh runner state for every (grid point, seed), sharded along that axis. Seed s uses the same
    key at every grid point, so grid points differ only by their hyperparameters."""
    import jax

    from jaxfactor.runner.anakin import init_runner

    keys = jax.device_put(seed_keys(cfg), sharding)
    hps = jax.device_put(jax.tree.map(lambda x: jax.numpy.repeat(x, cfg.num_seeds, axis=0), grid_hparams(cfg)),
                         sharding)
    init_fn = jax.jit(jax.vmap(lambda k, hp: init_runner(algo, env, cfg.algo.buffer_size, k, hp)),
                      out_shardings=sharding)
    return init_fn(keys, hps)


def preflight(cfg: RunConfig) -> None:
    """Every check that can fail before allocation: env/algo keys, devices, resume compatibility."""
    build(cfg)
    seed_sharding(cfg)
    _check_run_dir(cfg)


def _check_run_dir(cfg: RunConfig) -> None:
    """A fresh run never writes over another run's checkpoints; a resume must match its checkpoint."""
    if cfg.resume is not None:
        _check_resume(cfg)
    elif any((Path(cfg.run_dir) / "checkpoints").glob("[0-9]*")):
        raise ConfigError(f"run_dir={cfg.run_dir} already holds a run with checkpoints; allowed: resume={cfg.run_dir} "
                          "to continue it, or another run_dir")


def _check_resume(cfg: RunConfig) -> None:
    """The latest checkpoint's own config must match, up to what a resume may change."""
    from jaxfactor.checkpoint import Checkpointer, check_compatible

    if Path(cfg.run_dir).resolve() != Path(cfg.resume).resolve():
        raise ConfigError(f"resume={cfg.resume} continues that run in place; run_dir={cfg.run_dir} must be the same "
                          "directory (leave run_dir unset)")
    if not (Path(cfg.resume) / "checkpoints").is_dir():
        raise ConfigError(f"resume={cfg.resume} is not a run directory with checkpoints (no checkpoints/ there)")
    ckpt = Checkpointer(cfg.resume, cfg.checkpoint.max_to_keep, cfg.checkpoint.buffer)
    try:
        step, meta = ckpt.read_meta()
    except ConfigError as e:
        raise ConfigError(f"resume={cfg.resume}: {e}") from None
    finally:
        ckpt.close()
    check_compatible(meta["config"], _plain(cfg), f"{ckpt.directory}/{step}")


def _plain(cfg: RunConfig) -> dict[str, Any]:
    return json.loads(json.dumps(config_lib.to_dict(cfg)))


def run(cfg: RunConfig, *, trace_counter: list | None = None, stop_after_chunks: int | None = None,
        overrides: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate and write outputs; returns the summary dict.

    The batch axis is grid-major: entry g * num_seeds + s is seed s of grid point g (seed s uses the
    same key at every grid point, so grid points differ only by their hyperparameters).
    """
    import jax

    from jaxfactor import buffers
    from jaxfactor.checkpoint import Checkpointer
    from jaxfactor.loggers import RunLogger
    from jaxfactor.runner.anakin import make_chunk, make_evaluate

    env, algo, plan = build(cfg)
    sharding = seed_sharding(cfg)
    points, S = cfg.grid, cfg.num_seeds
    total = S * len(points)
    buffers.check_memory(env.spec, cfg.algo.buffer_size, total, cfg.max_buffer_memory_fraction)
    run_dir = Path(cfg.run_dir)
    _check_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config_lib.to_dict(cfg), indent=2))
    if overrides is not None and cfg.resume is None:
        (run_dir / "overrides.json").write_text(json.dumps(overrides))

    chunk_single = make_chunk(algo, env, cfg.algo.num_envs, cfg.algo.batch_size, plan.updates_per_chunk)

    def chunk_traced(runner):
        if trace_counter is not None:
            trace_counter.append(1)  # runs at trace time only: counts compilations of the chunk
        return chunk_single(runner)

    chunk_fn = jax.jit(jax.vmap(chunk_traced), donate_argnums=0, in_shardings=sharding, out_shardings=sharding)
    eval_fn = jax.jit(jax.vmap(make_evaluate(algo, env, cfg.env.test_episodes)), out_shardings=sharding)

    t_start = time.perf_counter()
    runner = initial_runner(cfg, env, algo, sharding)
    ckpt = Checkpointer(run_dir, cfg.checkpoint.max_to_keep, cfg.checkpoint.buffer)
    chunk_idx, train_s, wandb_id = 0, 0.0, None
    if cfg.resume is not None:
        restored, meta = ckpt.restore(runner)
        runner = jax.device_put(restored, sharding)
        chunk_idx, train_s, wandb_id = meta["chunk"], meta["train_s"], meta.get("wandb_run_id")
        print(f"resumed {run_dir} at chunk {chunk_idx} ({np.mean(meta['env_steps']):.0f} env steps per seed)"
              + ("" if meta["has_buffer"] else "; replay buffers start empty (saved with checkpoint.buffer=false)"))
    t0 = time.perf_counter()
    compiled = chunk_fn.lower(runner).compile()
    compile_s = time.perf_counter() - t0
    logger = RunLogger(cfg, run_dir, resume_chunk=chunk_idx if cfg.resume is not None else None,
                       wandb_run_id=wandb_id)

    def run_eval(index: int) -> dict[str, np.ndarray]:
        return greedy_stats(eval_fn, runner, jax.device_put(seed_keys(cfg, 0x5EED, index), sharding))

    def save(step: int) -> None:
        ckpt.save(step, runner, {"chunk": step, "train_s": train_s, "env_steps": env_steps.tolist(),
                                 "wandb_run_id": logger.run_id, "config": _plain(cfg)})
        kill_at = os.environ.get("JAXFACTOR_KILL_AFTER_CHECKPOINT")  # resume tests: a real SIGKILL here
        if kill_at is not None and step >= int(kill_at):
            ckpt.wait()
            os.kill(os.getpid(), signal.SIGKILL)

    bar = tqdm(total=cfg.total_timesteps, unit="step", disable=not cfg.progress, dynamic_ncols=True,
               desc=f"{algo.name} {cfg.env.name} x{total}")
    env_steps = np.asarray(jax.device_get(runner.env_steps), np.float64)
    last_eval: dict[str, np.ndarray] = {}
    diverged: dict[int, dict] = {}
    while env_steps.min() < cfg.total_timesteps:
        t0 = time.perf_counter()
        runner, m = compiled(runner)
        m = jax.device_get(m)
        train_s += time.perf_counter() - t0
        chunk_idx += 1
        for lane, keys in nonfinite_losses(m).items():
            if lane not in diverged:  # once per lane, loudly: its later metrics and results are NaN
                diverged[lane] = {"chunk": chunk_idx, "losses": keys}
                print(f"jaxfactor: lane {lane} ({lane_label(cfg, lane)}) diverged in chunk {chunk_idx}: "
                      f"{', '.join(keys)} not finite; its later metrics and results are NaN", file=sys.stderr, flush=True)
        summary = _chunk_summary(m)
        env_steps = summary["env_steps"].astype(np.float64)
        record: dict[str, Any] = {"chunk": chunk_idx, "env_steps": float(env_steps.mean()),
                                  "perf/steps_per_s": float(env_steps.sum() / train_s), "perf/compile_s": compile_s}
        if chunk_idx % plan.eval_every_chunks == 0 or env_steps.min() >= cfg.total_timesteps:
            last_eval = run_eval(chunk_idx)
            summary.update(last_eval)
        record["aggregate"] = {k: _aggregate(v) for k, v in summary.items() if np.isfinite(v).all()}
        if len(points) > 1:
            record["grid"] = {grid_label(p): {k: _aggregate(v) for k, v in block.items() if np.isfinite(v).all()}
                              for p, block in grid_blocks(cfg, summary)}
        record["per_seed"] = {k: v.tolist() for k, v in summary.items()}
        logger.log(record)
        bar.update(int(min(env_steps.mean(), cfg.total_timesteps) - bar.n))
        post = {"return": f"{summary['rollout/return'].mean():.2f}",
                "steps/s": f"{record['perf/steps_per_s']:.0f}"}
        if env.spec.has_win_flag:
            post["win"] = f"{summary['rollout/win_rate'].mean():.2f}"
        if last_eval:
            post["eval_return"] = f"{last_eval['eval/return'].mean():.2f}"
            if env.spec.has_win_flag:
                post["eval_win"] = f"{last_eval['eval/win_rate'].mean():.2f}"
        bar.set_postfix(post)
        if plan.checkpoint_every_chunks and chunk_idx % plan.checkpoint_every_chunks == 0:
            save(chunk_idx)
        if stop_after_chunks is not None and chunk_idx >= stop_after_chunks:
            break
    bar.close()
    save(chunk_idx)  # the final state: `jaxfactor.evaluate` and exact continuation read it
    ckpt.close()
    wall_s = time.perf_counter() - t_start

    final = run_eval(10**6)
    result: dict[str, Any] = {
        "algo": algo.name, "env": cfg.env.name, "num_seeds": cfg.num_seeds, "seed": cfg.seed,
        "env_steps": float(env_steps.mean()), "env_steps_per_seed": env_steps.tolist(),
        "wall_s": wall_s, "compile_s": compile_s, "train_s": train_s,
        "steps_per_s": float(env_steps.sum() / train_s) if train_s else 0.0, "chunks": chunk_idx,
        "devices": len(sharding.mesh.devices.flat),
        "final": _final_stats(final, env.spec.has_win_flag),
        "diverged_lanes": {str(lane): info for lane, info in sorted(diverged.items())},
    }
    if len(points) > 1:
        result["grid"] = [{"point": p, "label": grid_label(p), **_final_stats(block, env.spec.has_win_flag)}
                          for p, block in grid_blocks(cfg, final)]
    if cfg.env.kind == "matrix":
        _, ts = env.reset(jax.random.key(0))
        tables = jax.device_get(jax.vmap(lambda p: algo.extras["q_table"](p, ts))(runner.learner.params))
        result["matrix"] = {"payoff": env.payoff_in_force(float(env_steps.min())).tolist(), "q_tot": tables["q_tot"].tolist(),
                            "greedy_joint_action": tables["greedy"].tolist(),
                            "utilities": tables["utilities"].tolist()}
    (run_dir / "summary.json").write_text(json.dumps(result, indent=2))
    logger.log_summary(result)
    logger.close()
    _print_result(cfg, result, run_dir)
    return result


def _final_stats(final: dict[str, np.ndarray], has_win_flag: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"eval_return": final["eval/return"].tolist(),
                           "eval_return_mean": float(final["eval/return"].mean())}
    if has_win_flag:
        out["eval_win_rate"] = final["eval/win_rate"].tolist()
        out["eval_win_rate_mean"] = float(final["eval/win_rate"].mean())
    return out


def _print_result(cfg: RunConfig, result: dict[str, Any], run_dir: Path) -> None:
    print(f"\n== {result['algo']} on {result['env']}: {result['num_seeds']} seeds, "
          f"{result['env_steps']:.0f} env steps each, {result['wall_s']:.1f}s "
          f"(compile {result['compile_s']:.1f}s, {result['steps_per_s']:.0f} env steps/s over all seeds)")
    ret = np.asarray(result["final"]["eval_return"])
    print(f"greedy eval return per seed: {np.array2string(ret, precision=2)} (mean {ret.mean():.2f})")
    if "eval_win_rate" in result["final"]:
        win = np.asarray(result["final"]["eval_win_rate"])
        print(f"greedy eval win rate per seed: {np.array2string(win, precision=2)} (mean {win.mean():.2f})")
    for point in result.get("grid", []):
        line = f"  grid point {point['label']}: greedy eval return mean {point['eval_return_mean']:.2f}"
        if "eval_win_rate_mean" in point:
            line += f", win rate mean {point['eval_win_rate_mean']:.2f}"
        print(line)
    if "matrix" in result:
        tables = {k: np.asarray(result["matrix"][k]) for k in ("q_tot", "utilities")}
        tables["greedy"] = np.asarray(result["matrix"]["greedy_joint_action"])
        print(format_matrix_report(np.asarray(result["matrix"]["payoff"]), tables))
    if result["diverged_lanes"]:
        print(f"DIVERGED (non-finite losses) lanes: {', '.join(result['diverged_lanes'])}; see summary.json")
    print(f"outputs: {run_dir}/summary.json, metrics.jsonl, config.json")


def _hydra_entry() -> None:
    import logging

    import hydra

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # no "TPU not found" noise
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig, OmegaConf

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base=None)
    def _main(cfg: DictConfig) -> float:
        typed = config_lib.from_dict(OmegaConf.to_container(cfg, resolve=True))
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:  # jobs of one sweep must not share a run_dir
            typed = dataclasses.replace(typed, run_dir=f"{typed.run_dir}-job{hydra_cfg.job.num}")
        return run(typed, overrides=list(hydra_cfg.overrides.task))["final"]["eval_return_mean"]

    _main()


def _with_resume(overrides: list[str]) -> list[str]:
    """`resume=<run_dir>`: the run's saved overrides first, then the new ones, and run_dir = that directory,
    so `resume=<dir>` alone continues the run and anything that changes the run is refused later."""
    resume = [o.split("=", 1)[1] for o in overrides if o.startswith("resume=")]
    if not resume or resume[-1] in ("null", ""):
        return overrides
    saved_file = Path(resume[-1]) / "overrides.json"
    saved = json.loads(saved_file.read_text()) if saved_file.exists() else []
    keep = [o for o in saved if not o.lstrip("+~").startswith(("run_dir=", "resume="))]
    return [*keep, *[o for o in overrides if not o.startswith("run_dir=")], f"run_dir={resume[-1]}"]


def main(argv: list[str] | None = None) -> None:
    """CLI entry: validate everything up front (one-line errors), then hand over to Hydra."""
    from jaxfactor.cli import load_config

    argv = sys.argv[1:] if argv is None else list(argv)
    info_only = any(a in ("--help", "-h", "--hydra-help", "--info") or a.startswith(("--cfg", "-c"))
                    for a in argv)
    multirun = any(a in ("-m", "--multirun") for a in argv)
    try:
        if not info_only:
            overrides = [a for a in argv if not a.startswith("-")]
            if multirun:
                from jaxfactor.cli import check_overrides

                if any(o.startswith("resume=") for o in overrides):
                    raise ConfigError("resume= continues one run; allowed: without -m/--multirun")
                check_overrides(overrides)  # sweep values are validated per job
            else:
                overrides = _with_resume(overrides)
                preflight(load_config(overrides))  # env and algorithm factories validate their own keys
            argv = [a for a in argv if a.startswith("-")] + overrides
        sys.argv = [sys.argv[0], *argv]
        _hydra_entry()
    except ConfigError as e:
        print(f"jaxfactor: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
