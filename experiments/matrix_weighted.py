"""Matrix-game claims of the weighted family (ALGORITHMS.md §11.1 P1, P1', P1'', W2/W3-style), uniform data.

For each algorithm, one vmapped program trains `--seeds` seeds on each 2-agent game (M3, M1, and M3
with its optimum moved to (B,C)), and another on a 3-agent analogue of M3. Prints and saves a markdown
table (experiments/results/matrix_weighted.md): seeds greedy on the optimum, Q_tot at the optimum,
and for POW the largest |Q_r - payoff| over the table.

    python -m experiments.matrix_weighted [--algos pow_qmix cw_qmix qmix ow_qmix] [--steps 50000] [--seeds 5]

Settings of [POW] App. F.2: epsilon = 1 throughout, alpha = 0 for CW/OW/POW, POW tolerance 0.05, no
warm-up, 8 envs, batch 128, 50k env steps.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from experiments.common import make_cfg, save_table
from jaxfactor.matrix_study import permute_actions, three_agent_m3, train_matrix_games

M3 = [[8, -12, -12], [-12, 0, 0], [-12, 0, 7.9]]
M1 = [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]
M3_MOVED = permute_actions(M3, [2, 0, 1], [1, 2, 0])  # optimum 8 at (B,C), 7.9 at (A,B)


EXTRA = {"pow_qmix": ["algo.alpha=0.0", "algo.pow_tolerance=0.05", "algo.pow_warmup_steps=0"],
         "pow_vdn": ["algo.alpha=0.0", "algo.pow_tolerance=0.05", "algo.pow_warmup_steps=0"],
         "pow_qplex": ["algo.alpha=0.0", "algo.pow_tolerance=0.05", "algo.pow_warmup_steps=0"],
         "cw_qmix": ["algo.alpha=0.0"], "ow_qmix": ["algo.alpha=0.0"]}


def summarise(name: str, games: list[str], out: dict) -> list[str]:
    rows = []
    for g, game in enumerate(games):
        payoff = out["payoffs"][g]
        opt = np.unravel_index(np.argmax(payoff), payoff.shape)
        hits = (out["greedy"][g] == np.asarray(opt)).all(axis=1)
        q_opt = out["q_tot"][g][(slice(None),) + opt]
        qr = (f"{np.abs(out['q_r'][g] - payoff).reshape(len(hits), -1).max(1).max():.2f}" if "q_r" in out else "–")
        rows.append(f"| {name} | {game} | {hits.sum()}/{len(hits)} | {np.array2string(q_opt, precision=2)} | {qr} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["pow_qmix", "cw_qmix", "qmix", "ow_qmix"])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--no-three-agents", action="store_true")
    args = parser.parse_args()
    lines = ["| algo | game | seeds greedy on the optimum | Q_tot at the optimum per seed | max abs(Q_r - payoff) |",
             "|---|---|---|---|---|"]
    for algo in args.algos:
        base = [f"algo={algo}", "env=matrix_m3", "algo.eps_start=1", "algo.eps_finish=1", *EXTRA.get(algo, [])]
        updates = args.steps // make_cfg(*base).algo.num_envs
        t0 = time.perf_counter()
        out = train_matrix_games(make_cfg(*base), [M3, M1, M3_MOVED], args.seeds, updates)
        rows = summarise(algo, ["M3", "M1", "M3 optimum at (B,C)"], out)
        if not args.no_three_agents:
            out3 = train_matrix_games(make_cfg(*base), [three_agent_m3()], args.seeds, updates)
            rows += summarise(algo, ["3-agent M3"], out3)
        print("\n".join(rows), f"({time.perf_counter() - t0:.0f}s)", flush=True)
        lines += rows
    save_table("matrix_weighted", "\n".join(lines))


if __name__ == "__main__":
    main()
