"""What skipping padding and thrown-away work saves (issue 21 items 1-3), measured side by side in one run:

- collect: the device rollout that stops once every episode is over vs stepping all T = L+1 slots;
- learn: one gradient step on the sampled batch cut to its length bucket (algo.length_buckets) vs padded to T;
- warm-up: updates before learning can start, the lanes' shared branch vs a per-lane `cond` (a select that also
  computes the gradient step and throws it away).

    python -m experiments.bench_padding [--env smax_3m] [--algo qmix] [--seeds 4] [--batch 32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from experiments.common import make_cfg, save_table
from jaxfactor import buffers
from jaxfactor.runner.anakin import make_chunk
from jaxfactor.runner.lanes import build, init_lanes
from jaxfactor.runner.learn import over_lanes, update_on_real_slots
from jaxfactor.runner.rollout import rollout


def timed(fn, *args, repeats: int) -> tuple[float, float]:
    """(compile s, median s per call) of a jitted function."""
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return compile_s, float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="smax_3m")
    parser.add_argument("--algo", default="qmix")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cfg = make_cfg(
        f"algo={args.algo}",
        f"env={args.env}",
        f"num_seeds={args.seeds}",
        f"algo.batch_size={args.batch}",
        f"algo.buffer_size={max(args.batch, 64)}",
    )
    env, algo, _ = build(cfg)
    E, B, T = cfg.algo.num_envs, args.batch, env.spec.episode_limit + 1
    runner = init_lanes(cfg, algo)
    keys = jax.random.split(jax.random.key(1), args.seeds)
    rows = []

    def collect(record: bool):
        def one(learner, key):
            out = rollout(algo, env, algo.behaviour(learner), key, E, greedy=False, record=record)
            return out[0], out[1]["length"]

        return jax.jit(jax.vmap(one))

    full = timed(collect(True), runner.learner, keys, repeats=args.repeats)
    early = timed(collect(False), runner.learner, keys, repeats=args.repeats)
    lengths = np.asarray(collect(False)(runner.learner, keys)[1])
    rows.append(
        (
            "collect (rollout of E envs per seed)",
            full,
            early,
            f"episode lengths mean {lengths.mean():.1f}, max {lengths.max()} of {T - 1}",
        )
    )

    fill = jax.jit(over_lanes(make_chunk(algo, env, E, B, -(-B // E))))
    runner, _ = fill(runner)
    batch = jax.vmap(lambda b, k: buffers.sample(b, k, B))(runner.buffer, keys)
    longest = int(np.asarray(batch.filled).sum(-1).max())

    def learn(count: int):
        return jax.jit(over_lanes(lambda lr, b, k: update_on_real_slots(algo, lr, b, k, count, "lanes")))

    padded = timed(learn(1), runner.learner, batch, keys, repeats=args.repeats)
    cut = timed(learn(cfg.algo.length_buckets), runner.learner, batch, keys, repeats=args.repeats)
    rows.append(
        (
            f"learn (one gradient step, batch {B})",
            padded,
            cut,
            f"longest sampled episode {longest} of {T} slots; buckets {cfg.algo.length_buckets}",
        )
    )

    fresh = init_lanes(cfg, algo)
    warm = (B - 1) // E  # updates that cannot learn yet: warm x E episodes < B
    assert warm >= 1, "--batch must exceed num_envs"
    per_lane = timed(jax.jit(jax.vmap(make_chunk(algo, env, E, B, warm, axis_name=None))), fresh, repeats=args.repeats)
    shared = timed(jax.jit(over_lanes(make_chunk(algo, env, E, B, warm))), fresh, repeats=args.repeats)
    rows.append((f"warm-up ({warm} updates before learning starts)", per_lane, shared, "rollout included"))

    device = jax.devices()[0]
    lines = [
        f"{args.algo} on {args.env}, {args.seeds} seeds, {E} envs per seed; device {device.platform} "
        f"({device.device_kind}), jax {jax.__version__}; medians of {args.repeats}",
        "",
        "| what | before: s (compile s) | now: s (compile s) | speed-up | note |",
        "|---|---|---|---|---|",
    ]
    for what, (c0, t0), (c1, t1), note in rows:
        lines.append(f"| {what} | {t0:.4f} ({c0:.1f}) | {t1:.4f} ({c1:.1f}) | {t0 / t1:.1f}x | {note} |")
        print(lines[-1], flush=True)
    save_table(f"bench_padding_{args.env}_{args.algo}", "\n".join(lines))


if __name__ == "__main__":
    main()
