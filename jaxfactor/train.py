"""`python -m jaxfactor.train algo=<name> env=<name> [num_seeds=N] [key=value ...]`

Trains `num_seeds` independent seeds in one compiled program: `jit(vmap(chunk))` over seeds, the
host looping over chunks to log, evaluate greedily and report. Writes to `run_dir`: config.yaml,
metrics.jsonl and summary.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

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


def run(cfg: RunConfig, *, trace_counter: list | None = None, stop_after_chunks: int | None = None
        ) -> dict[str, Any]:
    """Train, evaluate and write outputs; returns the summary dict."""
    import jax
    from tqdm import tqdm

    from jaxfactor import buffers
    from jaxfactor.runner.anakin import init_runner, make_chunk, make_evaluate

    env, algo, plan = build(cfg)
    buffers.check_memory(env.spec, cfg.algo.buffer_size, cfg.num_seeds, cfg.max_buffer_memory_fraction)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config_lib.to_plain(cfg), indent=2))

    chunk_single = make_chunk(algo, env, cfg.algo.num_envs, cfg.algo.batch_size, plan.updates_per_chunk)

    def chunk_traced(runner):
        if trace_counter is not None:
            trace_counter.append(1)  # runs at trace time only: counts compilations of the chunk
        return chunk_single(runner)

    seed_keys = jax.random.split(jax.random.key(cfg.seed), cfg.num_seeds)
    eval_base = jax.random.fold_in(jax.random.key(cfg.seed), 0x5EED)
    init_fn = jax.jit(jax.vmap(lambda k: init_runner(algo, env, cfg.algo.buffer_size, k)))
    chunk_fn = jax.jit(jax.vmap(chunk_traced), donate_argnums=0)
    evaluate = make_evaluate(algo, env, cfg.env.test_episodes)
    eval_fn = jax.jit(jax.vmap(evaluate))

    t_start = time.perf_counter()
    runner = init_fn(seed_keys)
    t0 = time.perf_counter()
    compiled = chunk_fn.lower(runner).compile()
    compile_s = time.perf_counter() - t0

    def run_eval(index: int) -> dict[str, np.ndarray]:
        keys = jax.random.split(jax.random.fold_in(eval_base, index), cfg.num_seeds)
        stats = jax.device_get(eval_fn(runner.learner.params, keys, runner.env_steps))
        return {"eval/return": stats["return"].mean(1), "eval/win_rate": stats["won"].mean(1),
                "eval/length": stats["length"].mean(1)}

    metrics_file = (run_dir / "metrics.jsonl").open("w")
    bar = tqdm(total=cfg.total_timesteps, unit="step", disable=not cfg.progress, dynamic_ncols=True,
               desc=f"{algo.name} {cfg.env.name} x{cfg.num_seeds}")
    train_s, chunk_idx, env_steps = 0.0, 0, np.zeros(cfg.num_seeds)
    last_eval: dict[str, np.ndarray] = {}
    while env_steps.min() < cfg.total_timesteps:
        t0 = time.perf_counter()
        runner, m = compiled(runner)
        m = jax.device_get(m)
        train_s += time.perf_counter() - t0
        chunk_idx += 1
        summary = _chunk_summary(m)
        env_steps = summary["env_steps"].astype(np.float64)
        record: dict[str, Any] = {"chunk": chunk_idx, "env_steps": float(env_steps.mean()),
                                  "perf/steps_per_s": float(env_steps.sum() / train_s)}
        if chunk_idx % plan.eval_every_chunks == 0 or env_steps.min() >= cfg.total_timesteps:
            last_eval = run_eval(chunk_idx)
            summary.update(last_eval)
        record["aggregate"] = {k: _aggregate(v) for k, v in summary.items() if np.isfinite(v).all()}
        record["per_seed"] = {k: v.tolist() for k, v in summary.items()}
        metrics_file.write(json.dumps(record) + "\n")
        metrics_file.flush()
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
        if stop_after_chunks is not None and chunk_idx >= stop_after_chunks:
            break
    bar.close()
    metrics_file.close()
    wall_s = time.perf_counter() - t_start

    final = run_eval(10**6)
    result: dict[str, Any] = {
        "algo": algo.name, "env": cfg.env.name, "num_seeds": cfg.num_seeds, "seed": cfg.seed,
        "env_steps": float(env_steps.mean()), "env_steps_per_seed": env_steps.tolist(),
        "wall_s": wall_s, "compile_s": compile_s, "train_s": train_s,
        "steps_per_s": float(env_steps.sum() / train_s), "chunks": chunk_idx,
        "final": {"eval_return": final["eval/return"].tolist(),
                  "eval_return_mean": float(final["eval/return"].mean())},
    }
    if env.spec.has_win_flag:
        result["final"]["eval_win_rate"] = final["eval/win_rate"].tolist()
        result["final"]["eval_win_rate_mean"] = float(final["eval/win_rate"].mean())
    if cfg.env.kind == "matrix":
        _, ts = env.reset(jax.random.key(0))
        tables = jax.device_get(jax.vmap(lambda p: algo.extras["q_table"](p, ts))(runner.learner.params))
        result["matrix"] = {"payoff": env.payoff_in_force(float(env_steps.min())).tolist(), "q_tot": tables["q_tot"].tolist(),
                            "greedy_joint_action": tables["greedy"].tolist(),
                            "utilities": tables["utilities"].tolist()}
    (run_dir / "summary.json").write_text(json.dumps(result, indent=2))
    _print_result(cfg, result, run_dir)
    return result


def _print_result(cfg: RunConfig, result: dict[str, Any], run_dir: Path) -> None:
    print(f"\n== {result['algo']} on {result['env']}: {result['num_seeds']} seeds, "
          f"{result['env_steps']:.0f} env steps each, {result['wall_s']:.1f}s "
          f"(compile {result['compile_s']:.1f}s, {result['steps_per_s']:.0f} env steps/s over all seeds)")
    ret = np.asarray(result["final"]["eval_return"])
    print(f"greedy eval return per seed: {np.array2string(ret, precision=2)} (mean {ret.mean():.2f})")
    if "eval_win_rate" in result["final"]:
        win = np.asarray(result["final"]["eval_win_rate"])
        print(f"greedy eval win rate per seed: {np.array2string(win, precision=2)} (mean {win.mean():.2f})")
    if "matrix" in result:
        tables = {k: np.asarray(result["matrix"][k]) for k in ("q_tot", "utilities")}
        tables["greedy"] = np.asarray(result["matrix"]["greedy_joint_action"])
        print(format_matrix_report(np.asarray(result["matrix"]["payoff"]), tables))
    print(f"outputs: {run_dir}/summary.json, metrics.jsonl, config.json")


def _hydra_entry() -> None:
    import logging

    import hydra

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # no "TPU not found" noise
    from omegaconf import DictConfig, OmegaConf

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base=None)
    def _main(cfg: DictConfig) -> float:
        typed = config_lib.from_dict(OmegaConf.to_container(cfg, resolve=True))
        return run(typed)["final"]["eval_return_mean"]

    _main()


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

                check_overrides(overrides)  # sweep values are validated per job
            else:
                build(load_config(overrides))  # env and algorithm factories validate their own keys
        sys.argv = [sys.argv[0], *argv]
        _hydra_entry()
    except ConfigError as e:
        print(f"jaxfactor: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
