"""Throughput benchmark: training env-steps/s (rollout + learning) and env-only steps/s for
num_seeds in {1, 4, 16} on smax_3m and matrix_m1, plus compile times; then env-only steps/s of every
environment family at 256 parallel envs. Prints and saves markdown tables to experiments/results/bench.md.

    python -m experiments.bench [--seeds 1 4 16] [--updates 5] [--envs smax_3m matrix_m1]
                                [--env-only predator_prey_p0 ...] [--parallel 256]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from experiments.common import make_cfg, save_table
from jaxfactor.rl.policies import uniform_available
from jaxfactor.runner.anakin import make_chunk
from jaxfactor.runner.lanes import build, init_lanes
from jaxfactor.runner.learn import over_lanes
from jaxfactor.structs import where_env

ENV_ONLY = [
    "matrix_m1",
    "smax_3m",
    "predator_prey_p0",
    "predator_prey_small",
    "mpe_simple_spread",
    "mpe_simple_tag",
    "overcooked_cramped_room",
    "overcooked_asymm_advantages",
]


def bench_training(env_name: str, num_seeds: int, updates: int, buffer_size: int, algo_name: str = "qmix") -> dict:
    cfg = make_cfg(
        f"algo={algo_name}",
        f"env={env_name}",
        f"num_seeds={num_seeds}",
        f"algo.buffer_size={buffer_size}",
        "algo.eps_start=1",
        "algo.eps_finish=1",
    )
    env, algo, _ = build(cfg)
    runner = init_lanes(cfg, algo)
    # Fill the buffer past batch_size first so the timed updates all learn.
    warm = -(-cfg.algo.batch_size // cfg.algo.num_envs)
    warm_fn = jax.jit(
        over_lanes(
            make_chunk(algo, env, cfg.algo.num_envs, cfg.algo.batch_size, warm, length_buckets=cfg.algo.length_buckets)
        ),
        donate_argnums=0,
    )
    runner, _ = warm_fn(runner)
    chunk = jax.jit(
        over_lanes(
            make_chunk(
                algo, env, cfg.algo.num_envs, cfg.algo.batch_size, updates, length_buckets=cfg.algo.length_buckets
            )
        ),
        donate_argnums=0,
    )
    t0 = time.perf_counter()
    compiled = chunk.lower(runner).compile()
    compile_s = time.perf_counter() - t0
    steps_before = jax.device_get(runner.learner.t_env).sum()
    t0 = time.perf_counter()
    runner, metrics = compiled(runner)
    jax.block_until_ready(metrics)
    dt = time.perf_counter() - t0
    assert float(metrics["train/learning"].min()) == 1.0
    steps = float(jax.device_get(runner.learner.t_env).sum() - steps_before)
    return {"train_steps_per_s": steps / dt, "compile_s": compile_s}


def bench_env_only(env_name: str, num_seeds: int, num_envs: int = 8, steps: int = 200) -> dict:
    """Uniform random available actions in num_seeds x num_envs parallel envs, episodes restarted at
    termination or at the time limit."""
    cfg = make_cfg(f"env={env_name}")
    env, _, _ = build(cfg)
    n = num_seeds * num_envs
    limit = env.spec.episode_limit

    def run(key):
        state, ts = jax.vmap(env.reset)(jax.random.split(key, n))

        def step(carry, k):
            state, ts, t = carry
            k_a, k_s, k_r = jax.random.split(k, 3)
            actions = uniform_available(k_a, ts.avail)
            new_state, new_ts = jax.vmap(env.step)(jax.random.split(k_s, n), state, actions)
            r_state, r_ts = jax.vmap(env.reset)(jax.random.split(k_r, n))
            done = new_ts.terminal | (t + 1 >= limit)
            carry = (where_env(done, r_state, new_state), where_env(done, r_ts, new_ts), jnp.where(done, 0, t + 1))
            return carry, new_ts.reward

        _, rewards = jax.lax.scan(step, (state, ts, jnp.zeros((n,), jnp.int32)), jax.random.split(key, steps))
        return rewards.sum()

    fn = jax.jit(run)
    t0 = time.perf_counter()
    compiled = fn.lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(jax.random.key(1)))
    dt = time.perf_counter() - t0
    return {"env_steps_per_s": n * steps / dt, "env_compile_s": compile_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--envs", nargs="+", default=["smax_3m", "matrix_m1"])
    parser.add_argument("--updates", type=int, default=4, help="timed updates per configuration")
    parser.add_argument("--algo", default="qmix", help="algorithm of the training table")
    parser.add_argument("--buffer-size", type=int, default=512, help="episodes per seed (memory: 16 seeds)")
    parser.add_argument("--env-only", nargs="+", default=ENV_ONLY, help="envs of the env-only table")
    parser.add_argument("--parallel", type=int, default=256, help="parallel envs of the env-only table")
    args = parser.parse_args()
    device = jax.devices()[0]
    rows = []
    for env_name in args.envs:
        for s in args.seeds:
            t = bench_training(env_name, s, args.updates, args.buffer_size, args.algo)
            e = bench_env_only(env_name, s)
            rows.append((env_name, s, t["train_steps_per_s"], e["env_steps_per_s"], t["compile_s"], e["env_compile_s"]))
            print(
                f"{env_name} seeds={s}: train {t['train_steps_per_s']:.0f} steps/s, env-only "
                f"{e['env_steps_per_s']:.0f} steps/s, compile {t['compile_s']:.1f}s",
                flush=True,
            )
    lines = [
        f"device: {device.platform} ({device.device_kind}), jax {jax.__version__}; {args.algo}, 8 envs/seed, "
        f"batch 128 episodes, one gradient step per update; env-only = uniform random actions, 8 envs/seed",
        "",
        "| env | num_seeds | training env-steps/s (all seeds) | env-only steps/s | chunk compile s | env compile s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {r[0]} | {r[1]} | {r[2]:.0f} | {r[3]:.0f} | {r[4]:.1f} | {r[5]:.1f} |" for r in rows]
    lines += [
        "",
        f"Env-only throughput, {args.parallel} parallel envs, uniform random available actions:",
        "",
        "| env | agents | episode limit | env-only steps/s | compile s |",
        "|---|---|---|---|---|",
    ]
    for env_name in args.env_only:
        spec = build(make_cfg(f"env={env_name}"))[0].spec
        e = bench_env_only(env_name, 1, num_envs=args.parallel)
        print(f"{env_name} x{args.parallel}: env-only {e['env_steps_per_s']:.0f} steps/s", flush=True)
        lines.append(
            f"| {env_name} | {spec.num_agents} | {spec.episode_limit} | {e['env_steps_per_s']:.0f} | "
            f"{e['env_compile_s']:.1f} |"
        )
    save_table("bench", "\n".join(lines))


if __name__ == "__main__":
    main()
