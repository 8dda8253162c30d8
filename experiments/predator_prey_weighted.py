"""Predator-prey with a mis-capture penalty (ALGORITHMS.md §11.2 PP1-PP3): QMIX vs CW-QMIX, OW-QMIX and
POW-QMIX, `--seeds` seeds per algorithm in one vmapped program each. Prints and saves a markdown table
(experiments/results/predator_prey_weighted.md): final greedy return per seed, mean and a 95% interval
across seeds (t-interval), and the untrained greedy return.

    # cheap version on the small grid (the numbers in experiments/README.md)
    python -m experiments.predator_prey_weighted --env predator_prey_small --penalty -4 --steps 200000 \\
        --eps-anneal 50000 --warmup 20000
    # §11.2 acceptance ("cheap version" of the paper setting: p = -4, eps over 500k, 2M steps; needs a GPU)
    python -m experiments.predator_prey_weighted --env predator_prey_p4 --steps 2000000 --eps-anneal 500000
    # a smaller grid (experiments/README.md, session 5)
    python -m experiments.predator_prey_weighted --algos qmix pow_qmix --steps 45000 --eps-anneal 20000 --warmup 5000 \
        --extra env.rows=3 env.cols=3 env.num_agents=4 env.num_stags=2 env.episode_limit=10 algo.batch_size=32 \
        algo.num_envs=4

POW uses the paper's predator-prey tolerance eps_r = 1 (App. F); CW/OW keep alpha = 0.1 ([WQ] PP1).
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from experiments.common import make_cfg, save_table
from experiments.learning import untrained_then_trained

T_975 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and half-width of the 95% t-interval across seeds."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), T_975.get(len(v) - 1, 1.96) * float(v.std(ddof=1)) / math.sqrt(len(v))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["qmix", "cw_qmix", "ow_qmix", "pow_qmix"])
    parser.add_argument("--env", default="predator_prey_small")
    parser.add_argument("--penalty", type=float, default=-4.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--eps-anneal", type=int, default=50_000)
    parser.add_argument("--warmup", type=int, default=None, help="POW warm-up env steps (default: config's)")
    parser.add_argument(
        "--extra",
        nargs="*",
        default=[],
        help="overrides for every algorithm, e.g. env.rows=3 env.cols=3 algo.batch_size=32",
    )
    args = parser.parse_args()
    rows = []
    for algo in args.algos:
        extra = (
            ["algo.pow_tolerance=1.0"] + ([f"algo.pow_warmup_steps={args.warmup}"] if args.warmup is not None else [])
            if algo.startswith("pow")
            else []
        )
        cfg = make_cfg(
            f"algo={algo}",
            f"env={args.env}",
            f"env.penalty={args.penalty}",
            f"num_seeds={args.seeds}",
            f"total_timesteps={args.steps}",
            f"algo.eps_anneal_steps={args.eps_anneal}",
            *extra,
            *args.extra,
            run_dir=f"runs/experiments/predator_prey_weighted/{args.env}_p{args.penalty:g}/{algo}",
        )
        report = untrained_then_trained(cfg)
        mean, half = interval(report["trained"]["return"])
        rows.append(
            (
                algo,
                report["trained"]["return"],
                mean,
                half,
                float(np.mean(report["untrained"]["return"])),
                report["wall_s"],
            )
        )
        print(
            f"{algo}: final greedy return {np.round(report['trained']['return'], 2).tolist()} "
            f"mean {mean:.1f} ± {half:.1f} ({report['wall_s']:.0f}s)",
            flush=True,
        )
    lines = [
        f"{args.env}, penalty {args.penalty:g}, {args.seeds} seeds, {args.steps} env steps per seed, "
        f"epsilon annealed over {args.eps_anneal} steps{', ' + ' '.join(args.extra) if args.extra else ''}; "
        "greedy evaluation at the end",
        "",
        "| algo | final greedy return per seed | mean ± 95% CI | untrained (mean) | wall s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {a} | {', '.join(f'{x:.1f}' for x in r)} | {m:.1f} ± {h:.1f} | {u:.1f} | {w:.0f} |"
        for a, r, m, h, u, w in rows
    ]
    save_table(f"predator_prey_weighted_{args.env}", "\n".join(lines))


if __name__ == "__main__":
    main()
