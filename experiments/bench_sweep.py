"""A hyperparameter grid on the seed axis vs one run per grid point: wall time, compile time and
training throughput, measured in one process (ratios are what to read; absolute numbers depend on
the machine). Saves a markdown table to experiments/results/bench_sweep.md.

    python -m experiments.bench_sweep [--env smax_3m] [--seeds 2] [--steps 2000] [--lrs 0.001 0.0005]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from experiments.common import make_cfg, save_table
from jaxfactor.runner.loop import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="smax_3m")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.001, 0.0005])
    args = parser.parse_args()
    common = [
        f"env={args.env}",
        f"num_seeds={args.seeds}",
        f"total_timesteps={args.steps}",
        f"log_every_steps={args.steps // 2}",
        f"eval_every_steps={args.steps}",
        "algo.buffer_size=64",
        "algo.batch_size=16",
        "env.test_episodes=4",
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        grid = run(make_cfg(*common, f"sweep.algo.lr=[{','.join(map(str, args.lrs))}]", run_dir=f"{tmp}/grid"))
        grid_wall = time.perf_counter() - t0
        rows.append(("grid on the seed axis (1 program)", grid_wall, grid["compile_s"], grid["steps_per_s"]))
        separate_wall, compile_s, steps = 0.0, 0.0, 0.0
        train_s = 0.0
        for i, lr in enumerate(args.lrs):
            t0 = time.perf_counter()
            one = run(make_cfg(*common, f"algo.lr={lr}", run_dir=f"{tmp}/lr{i}"))
            separate_wall += time.perf_counter() - t0
            compile_s += one["compile_s"]
            steps += one["env_steps"] * args.seeds
            train_s += one["train_s"]
        rows.append((f"{len(args.lrs)} separate runs", separate_wall, compile_s, steps / train_s))
    lines = [
        f"{args.env}, {args.seeds} seeds x {len(args.lrs)} learning rates, {args.steps} env steps per seed",
        "",
        "| how | wall s (incl. eval) | compile s | training env steps/s (all lanes) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {wall:.1f} | {comp:.1f} | {sps:.0f} |" for name, wall, comp, sps in rows]
    lines.append(f"\nwall-time ratio separate / grid: {rows[1][1] / rows[0][1]:.2f}")
    save_table("bench_sweep", "\n".join(lines))


if __name__ == "__main__":
    main()
