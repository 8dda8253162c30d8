"""S2Q's shifting-optimum game (ALGORITHMS.md §10.2, §11.1 S1/S2): S2Q vs OW-QMIX (and QMIX).

Phase 1 pays [[8,-12,-12],[-12,7,0],[-12,0,6]] for 50k env steps, then the payoff switches in place to
[[6,-12,-12],[-12,5,0],[-12,0,10]] for another 50k (learners and replay kept); epsilon 1 -> 0.05 over
the first 20k steps only, S2Q temperature T_s = 1 (§10.2) and down-weight w_c = 0.1 (the paper's SMAC
values 0.9 / 0.75 leave Q^(0) almost unweighted and it misses (A,A) here, like QMIX; 0.1 is the
alpha of its OW-QMIX base). For every algorithm, `--seeds` seeds run in
one vmapped program; the greedy joint actions are tabulated every `--every` env steps. Prints:
the greedy joint action of every sub-value at the end of phase 1, the env steps after the shift
until the greedy action is (C,C) for good (median over seeds), and S2's joint-action visitation.

    python -m experiments.s2q_shift [--seeds 5] [--every 2000] [--algos s2q ow_qmix qmix]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from experiments.common import make_cfg, save_table
from experiments.matrix_tables import train_matrix_curve
from experiments.shift_games import follow_steps
from jaxfactor.runner.anakin import make_chunk
from jaxfactor.runner.lanes import build, init_lanes
from jaxfactor.runner.learn import over_lanes
from jaxfactor.runner.rollout import rollout

SHIFT_AT, TOTAL = 50_000, 100_000
COMMON = ["env=matrix_s2q_shift", "algo.eps_anneal_steps=20000"]
EXTRA = {"s2q": ["algo.temperature=1.0", "algo.down_weight=0.1"]}
LABEL = "ABC"


def label(u) -> str:
    return "(" + ",".join(LABEL[int(a)] for a in u) + ")"


def visitation(algo_name: str, seeds: int, steps: int) -> np.ndarray:
    """Phase-1 behaviour (S2): joint-action counts of the training policy after `steps` env steps."""
    cfg = make_cfg(f"algo={algo_name}", *COMMON, *EXTRA.get(algo_name, []), f"num_seeds={seeds}")
    env, algo, _ = build(cfg)

    def lane(runner):
        runner, _ = make_chunk(algo, env, cfg.algo.num_envs, cfg.algo.batch_size, steps // cfg.algo.num_envs)(runner)
        # The training policy after `steps` (epsilon has annealed to 0.05 by then).
        episodes, _ = rollout(algo, env, algo.behaviour(runner.learner), runner.key, 512, greedy=False)
        first = episodes.actions[:, 0]  # [512, 2]
        return jnp.zeros((3, 3)).at[first[:, 0], first[:, 1]].add(1.0)

    counts = jax.jit(over_lanes(lane))(init_lanes(cfg, algo))
    return np.asarray(counts).sum(0) / np.asarray(counts).sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--every", type=int, default=2000)
    parser.add_argument("--algos", nargs="+", default=["s2q", "ow_qmix", "qmix"])
    parser.add_argument("--visitation", action="store_true", help="also print S2's visitation tables")
    args = parser.parse_args()
    lines = [
        "| algo | greedy at 50k (phase 1), per seed | sub-values 1, 2 at 50k | env steps to (C,C) after the "
        "shift, per seed | median | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for name in args.algos:
        cfg = make_cfg(f"algo={name}", *COMMON, *EXTRA.get(name, []), f"num_seeds={args.seeds}")
        t0 = time.perf_counter()
        out = train_matrix_curve(cfg, args.seeds, args.every // cfg.algo.num_envs, TOTAL // args.every)
        wall = time.perf_counter() - t0
        steps = out["env_steps"][0]
        p1 = int(np.searchsorted(steps, SHIFT_AT)) - 1  # last point of phase 1
        phase1 = [label(out["greedy"][s, p1]) for s in range(args.seeds)]
        subs = (
            [" ".join(label(out["subvalue_greedy"][s, p1, k]) for k in (1, 2)) for s in range(args.seeds)]
            if "subvalue_greedy" in out
            else ["-"]
        )
        switch = [follow_steps(out["greedy"][s], steps, (2, 2), SHIFT_AT) for s in range(args.seeds)]
        lines.append(
            f"| {name} | {', '.join(phase1)} | {'; '.join(subs)} | "
            f"{', '.join('never' if np.isinf(x) else f'{x:.0f}' for x in switch)} | "
            f"{np.median(switch):.0f} | {wall:.0f} |"
        )
        print(lines[-1], flush=True)
    if args.visitation:
        for name in ("s2q", "qmix"):
            lines += [
                "",
                f"S2 visitation of {name}'s training policy after 50k steps (rows agent 0):",
                np.array2string(visitation(name, args.seeds, SHIFT_AT), precision=3),
            ]
    save_table("s2q_shift", "\n".join(lines))


if __name__ == "__main__":
    main()
