"""Matrix-game claims of the weighted family (ALGORITHMS.md §11.1 P1, P1', P1'', W2/W3-style), uniform data.

For each algorithm, one vmapped program trains `--seeds` seeds on each 2-agent game (M3, M1, and M3
with its optimum moved to (B,C)), and another on a 3-agent analogue of M3. Prints and saves a markdown
table (experiments/results/matrix_weighted.md), one row per game and evaluation point (`--points` evenly
spaced, the last at `--steps`): seeds greedy on the optimum, seeds with Q_tot at the optimum within 0.5
of 8, Q_tot at the optimum per seed, the largest |Q_tot - payoff| on the other cells per seed (P1'':
QPLEX fits the table), and for POW the seeds with Q_r within 0.5 of the payoff on every
cell, the largest |Q_r - payoff| and the seeds whose potentially optimal set is the optimum alone.

    python -m experiments.matrix_weighted [--algos pow_qmix cw_qmix qmix ow_qmix] [--steps 50000] [--seeds 5]
    # the CI tests' setting (tests/test_weighted_matrix.py), tabulated every 10k env steps
    python -m experiments.matrix_weighted --steps 40000 --points 4 --extra algo.batch_size=32
    # the 3-agent game alone
    python -m experiments.matrix_weighted --algos pow_qmix --no-two-agents --steps 20000 --points 8 \
        --extra algo.batch_size=64

Settings of [POW] App. F.2: epsilon = 1 throughout, alpha = 0 for CW/OW/POW, POW tolerance 0.05, no
warm-up, 8 envs, batch 128, 50k env steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from experiments.common import make_cfg, save_table
from experiments.matrix_tables import train_matrix_games
from jaxfactor.envs.matrix_games import optimum, permute_actions, three_agent_m3

M3, M1 = (make_cfg(f"env=matrix_{name}").env.params["payoff"] for name in ("m3", "m1"))  # configs/env
M3_MOVED = permute_actions(M3, [2, 0, 1], [1, 2, 0])  # optimum 8 at (B,C), 7.9 at (A,B)


EXTRA = {
    "pow_qmix": ["algo.alpha=0.0", "algo.pow_tolerance=0.05", "algo.pow_warmup_steps=0"],
    "pow_vdn": ["algo.alpha=0.0", "algo.pow_tolerance=0.05", "algo.pow_warmup_steps=0"],
    "pow_qplex": ["algo.alpha=0.0", "algo.pow_tolerance=0.05", "algo.pow_warmup_steps=0"],
    "cw_qmix": ["algo.alpha=0.0"],
    "ow_qmix": ["algo.alpha=0.0"],
}


def summarise(name: str, games: list[str], out: dict, steps: int, tolerance: float) -> list[str]:
    rows = []
    for g, game in enumerate(games):
        payoff = out["payoffs"][g]
        opt = optimum(payoff)
        seeds, points = out["greedy"][g].shape[:2]
        for p in range(points):
            hits = (out["greedy"][g][:, p] == np.asarray(opt)).all(axis=1)
            q_opt = out["q_tot"][g][(slice(None), p) + opt]
            off_opt = np.abs(out["q_tot"][g][:, p] - payoff).reshape(seeds, -1)  # P1'': how exact is the rest
            off_opt[:, np.ravel_multi_index(opt, payoff.shape)] = 0.0
            row = (
                f"| {name} | {game} | {steps * (p + 1) // points} | {hits.sum()}/{seeds} | "
                f"{(np.abs(q_opt - payoff[opt]) <= 0.5).sum()}/{seeds} | {np.array2string(q_opt, precision=2)} | "
                f"{np.array2string(off_opt.max(1), precision=2)} |"
            )
            if "q_r" in out:
                q_r, v_r = out["q_r"][g][:, p].reshape(seeds, -1), out["v_r"][g][:, p][:, None]
                err = np.abs(q_r - payoff.reshape(1, -1)).max(1)
                in_set = np.abs(q_r - v_r) < tolerance
                alone = in_set[:, np.ravel_multi_index(opt, payoff.shape)] & (in_set.sum(1) == 1)
                row += f" {(err <= 0.5).sum()}/{seeds} | {err.max():.2f} | {alone.sum()}/{seeds} |"
            else:
                row += " – | – | – |"
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["pow_qmix", "cw_qmix", "qmix", "ow_qmix"])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--points", type=int, default=1, help="evaluation points, evenly spaced up to --steps")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every algorithm, e.g. algo.batch_size=32")
    parser.add_argument("--no-three-agents", action="store_true")
    parser.add_argument("--no-two-agents", action="store_true", help="only the 3-agent game")
    args = parser.parse_args()
    lines = [
        "| algo | game | env steps | seeds greedy on the optimum | seeds with Q_tot(opt) within 0.5 of 8 "
        "| Q_tot at the optimum per seed | max abs(Q_tot - payoff) off the optimum per seed "
        "| seeds with Q_r within 0.5 everywhere | max abs(Q_r - payoff) "
        "| seeds with only the optimum in the set |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for algo in args.algos:
        cfg = make_cfg(
            f"algo={algo}", "env=matrix_m3", "algo.eps_start=1", "algo.eps_finish=1", *EXTRA.get(algo, []), *args.extra
        )
        updates = args.steps // cfg.algo.num_envs
        tolerance = cfg.algo.extra.get("pow_tolerance", 0.0)
        t0 = time.perf_counter()
        rows = []
        if not args.no_two_agents:
            out = train_matrix_games(cfg, [M3, M1, M3_MOVED], args.seeds, updates, points=args.points)
            rows += summarise(algo, ["M3", "M1", "M3 optimum at (B,C)"], out, args.steps, tolerance)
        if not args.no_three_agents:
            out3 = train_matrix_games(cfg, [three_agent_m3()], args.seeds, updates, points=args.points)
            rows += summarise(algo, ["3-agent M3"], out3, args.steps, tolerance)
        print("\n".join(rows), f"({time.perf_counter() - t0:.0f}s)", flush=True)
        lines += rows
    save_table("matrix_weighted", "\n".join(lines))


if __name__ == "__main__":
    main()
