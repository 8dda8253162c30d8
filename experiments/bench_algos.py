"""Seconds per update of every algorithm against QMIX at the same settings (issue 21 item 7), one run:
one lane, a batch of `--batch` episodes from a behaviour rollout, the learner past its first update (POW's
recogniser takes `pow_steps`, not `pow_first_steps`), the update as the trainer runs it (length buckets on).

    python -m experiments.bench_algos [--env predator_prey_small] [--batch 32] [--repeats 5] [--algos qmix pow_qmix ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import jax.numpy as jnp

from experiments.bench_padding import timed
from experiments.common import make_cfg, save_table
from jaxfactor import buffers
from jaxfactor.runner.lanes import build, init_lanes
from jaxfactor.runner.learn import over_lanes, update_on_real_slots
from jaxfactor.runner.rollout import rollout

ALGOS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs" / "algo").glob("[!_]*.yaml"))


def seconds_per_update(algo_name: str, env_name: str, batch: int, repeats: int) -> float:
    cfg = make_cfg(
        f"algo={algo_name}",
        f"env={env_name}",
        "num_seeds=1",
        f"algo.batch_size={batch}",
        f"algo.buffer_size={batch}",
        f"algo.num_envs={batch}",
    )
    env, algo, _ = build(cfg)
    runner = init_lanes(cfg, algo)

    def sample(r):
        episodes, _ = rollout(algo, env, algo.behaviour(r.learner), r.key, batch, greedy=False)
        return buffers.sample(buffers.add(r.buffer, episodes, jnp.ones((batch,), bool)), r.key, batch)

    sampled = jax.jit(jax.vmap(sample))(runner)
    keys = jax.random.split(jax.random.key(0), 1)
    update = jax.jit(
        over_lanes(lambda lr, b, k: update_on_real_slots(algo, lr, b, k, cfg.algo.length_buckets, "lanes"))
    )
    learner, _ = update(runner.learner, sampled, keys)  # past the first update (and compiled)
    return timed(update, learner, sampled, keys, repeats=repeats)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="predator_prey_small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--algos", nargs="+", default=ALGOS, choices=ALGOS)
    args = parser.parse_args()
    names = ["qmix"] + [a for a in args.algos if a != "qmix"]
    rows = {}
    for name in names:
        rows[name] = seconds_per_update(name, args.env, args.batch, args.repeats)
        print(f"{name}: {rows[name] * 1e3:.1f} ms per update ({rows[name] / rows['qmix']:.1f}x QMIX)", flush=True)
    device = jax.devices()[0]
    lines = [
        f"{args.env}, one lane, batch {args.batch}; device {device.platform}, jax {jax.__version__}; "
        f"medians of {args.repeats}",
        "",
        "| algo | ms per update | x QMIX |",
        "|---|---|---|",
    ]
    lines += [f"| {n} | {t * 1e3:.1f} | {t / rows['qmix']:.1f} |" for n, t in rows.items()]
    save_table(f"bench_algos_{args.env}", "\n".join(lines))


if __name__ == "__main__":
    main()
