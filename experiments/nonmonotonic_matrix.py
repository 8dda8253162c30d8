"""Matrix-game claims of non-monotonic QMIX and ME-IGM (ALGORITHMS.md §11.1 N1, N1', N2, N2', E1, E1').

N1/N2: M4 (Game A) and M5 (Game B), epsilon-greedy 1 -> 0.05 over 20k, 50k env steps: NM-QMIX with the
SARSA TD(lambda) target vs QMIX, `--seeds` seeds per game, both games in one vmapped program.
E1: M1, 10k env steps: ME-QMIX (two-layer OPT, §9.2) vs epsilon-greedy QMIX; ME's policies are reported.
Prints and saves a markdown table (experiments/results/nonmonotonic_matrix.md).

    python -m experiments.nonmonotonic_matrix [--seeds 5] [--me-extra algo.alpha_lr=0.01]
    # other epsilon-greedy schedules for N1/N2 (start, finish, anneal env steps), M4/M5 only
    python -m experiments.nonmonotonic_matrix --eps 0.1 0.1 1 --nm-steps 20000 --skip-me
    # E1 / E1' only, with overrides for both M1 runs
    python -m experiments.nonmonotonic_matrix --seeds 16 --skip-nm --m1-extra algo.buffer_size=128
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from experiments.common import make_cfg, save_table
from experiments.matrix_tables import train_matrix_games

M1, M4, M5 = (make_cfg(f"env=matrix_{name}").env.params["payoff"] for name in ("m1", "m4", "m5"))  # configs/env


def label(u) -> str:
    return "(" + ",".join("ABC"[int(a)] for a in u) + ")"


def rows_for(name: str, games: dict, out: dict, seeds: int) -> list[str]:
    rows = []
    for g, (game, payoff) in enumerate(games.items()):
        payoff = np.asarray(payoff)
        greedy = [label(out["greedy"][g, s]) for s in range(seeds)]
        at_opt = sum(payoff[tuple(out["greedy"][g, s])] == payoff.max() for s in range(seeds))
        err = [float(np.abs(out["q_tot"][g, s] - payoff).max()) for s in range(seeds)]
        exact = sum(e <= 0.5 for e in err)
        rows.append(
            f"| {name} | {game} | {', '.join(greedy)} | {at_opt}/{seeds} | "
            f"{', '.join(f'{e:.2f}' for e in err)} | {exact}/{seeds} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--me-extra", nargs="*", default=[], help="extra overrides for ME-QMIX")
    parser.add_argument(
        "--eps",
        nargs=3,
        type=float,
        default=[1.0, 0.05, 20_000],
        metavar=("START", "FINISH", "STEPS"),
        help="epsilon-greedy schedule of the M4/M5 runs",
    )
    parser.add_argument("--nm-steps", type=int, default=50_000, help="env steps of the M4/M5 runs")
    parser.add_argument("--skip-me", action="store_true", help="only the M4/M5 runs")
    parser.add_argument("--skip-nm", action="store_true", help="only the M1 runs (E1, E1')")
    parser.add_argument("--m1-extra", nargs="*", default=[], help="extra overrides for both M1 runs (ME-QMIX, QMIX)")
    args = parser.parse_args()
    lines = [
        "| algo | game | greedy joint action per seed | seeds on the optimum | max abs(Q_tot - payoff) per seed "
        "| seeds with the whole table within 0.5 |",
        "|---|---|---|---|---|---|",
    ]
    nm_games = {"M4": M4, "M5": M5}
    for name, extra in (
        () if args.skip_nm else (("nmix (SARSA)", ["algo=nmix", "algo.bootstrap=sarsa"]), ("qmix", ["algo=qmix"]))
    ):
        cfg = make_cfg(
            *extra,
            "env=matrix_m4",
            f"algo.eps_start={args.eps[0]}",
            f"algo.eps_finish={args.eps[1]}",
            f"algo.eps_anneal_steps={int(args.eps[2])}",
        )
        t0 = time.perf_counter()
        out = train_matrix_games(cfg, list(nm_games.values()), args.seeds, args.nm_steps // cfg.algo.num_envs)
        lines += rows_for(name, nm_games, out, args.seeds)
        print("\n".join(lines[-2:]), f"({time.perf_counter() - t0:.0f}s)", flush=True)
    for name, extra in (
        ()
        if args.skip_me
        else (("me_qmix", ["algo=me_qmix", "algo.opt_layers=2", *args.me_extra]), ("qmix", ["algo=qmix"]))
    ):
        cfg = make_cfg(*extra, "env=matrix_m1", "algo.eps_anneal_steps=5000", *args.m1_extra)
        t0 = time.perf_counter()
        out = train_matrix_games(cfg, [M1], args.seeds, 10_000 // cfg.algo.num_envs)
        lines += rows_for(name, {"M1": M1}, out, args.seeds)
        print(lines[-1], f"({time.perf_counter() - t0:.0f}s)", flush=True)
        if name == "me_qmix":
            alphas = out["metrics"]["train/temperature/alpha"][0]
            entropies = out["metrics"]["train/temperature/entropy"][0]
            lines.append(
                f"| me_qmix | M1 | final alpha {', '.join(f'{a:.3g}' for a in alphas)}; joint policy entropy "
                f"{', '.join(f'{h:.2f}' for h in entropies)} nats | | | |"
            )
    save_table("nonmonotonic_matrix", "\n".join(lines))


if __name__ == "__main__":
    main()
