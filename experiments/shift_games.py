"""Does S2Q follow a moving optimum in general, or only on §10.2's game? (issue 18 item 5)

Shift games of the §10.2 shape (coordination on one joint action pays, miscoordination with the
penalised action costs -12), each paying `before` until `shift_at` env steps and `after` from then on,
learners and replay kept (the matrix env's payoff shift):

- `paper`: §10.2's game, (A,A)=8 -> (C,C)=10, the new optimum in the unpenalised corner.
- `behind_penalties`: (C,C)=8 -> (A,A)=10: the new optimum sits behind the -12 miscoordination penalties.
- `other_corner`: `paper` with each agent's actions relabelled (agent 0 B,C,A, agent 1 C,A,B): the same
  game, its optima in other cells, asymmetric labels.
- `three_agents`: 3 agents; all-A 8, all-B 7, all-C 6; some but not all on A -12; else 0 ->
  all-A 6, all-B 5, all-C 10.
- `early_shift` / `late_shift`: `paper` shifted at 25k of 50k / at 75k of 100k env steps.

Per algorithm and game, `--seeds` seeds in one vmapped program per (shape, shift time); greedy joint
actions tabulated every `--every` env steps. Prints per game: seeds greedy on the old optimum at the
shift, seeds greedy on the new optimum for good by the end, the env steps after the shift until then
(per seed and median; "never" counts as not following), and for S2Q the seeds whose sub-values 1..K hold
the new optimum's cell at the shift (the candidate S2Q needs to switch to).

    python -m experiments.shift_games [--algos s2q ow_qmix] [--seeds 10] [--games paper behind_penalties ...]
        [--extra algo.temperature=0.3 ...] [--label name]

Settings: each algorithm's yaml, plus `--extra` (applied to every algorithm) and, for S2Q, the
`experiment=s2q_shift` preset's values unless `--no-preset`.
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np

from experiments.common import make_cfg, save_table
from experiments.matrix_tables import train_matrix_games
from jaxfactor.envs.matrix_games import optimum, permute_actions

PAPER = ([[8, -12, -12], [-12, 7, 0], [-12, 0, 6]], [[6, -12, -12], [-12, 5, 0], [-12, 0, 10]])
BEHIND = ([[6, -12, -12], [-12, 7, 0], [-12, 0, 8]], [[10, -12, -12], [-12, 5, 0], [-12, 0, 6]])
RELABEL = ([1, 2, 0], [2, 0, 1])


def three_agent_shift() -> tuple[list, list]:
    def table(values: tuple[float, float, float]) -> list:
        t = np.zeros((3, 3, 3))
        for u in itertools.product(range(3), repeat=3):
            n_a = sum(a == 0 for a in u)
            same = len(set(u)) == 1
            t[u] = values[u[0]] if same else (-12 if n_a > 0 else 0)
        return t.tolist()

    return table((8, 7, 6)), table((6, 5, 10))


# name -> (before, after, shift_at, total env steps)
GAMES = {
    "paper": (*PAPER, 50_000, 100_000),
    "behind_penalties": (*BEHIND, 50_000, 100_000),
    "other_corner": (permute_actions(PAPER[0], *RELABEL), permute_actions(PAPER[1], *RELABEL), 50_000, 100_000),
    "three_agents": (*three_agent_shift(), 50_000, 100_000),
    "early_shift": (*PAPER, 25_000, 50_000),
    "late_shift": (*PAPER, 75_000, 100_000),
}
PRESET = {"s2q": ["experiment=s2q_shift"]}  # ε over 20k, T_s 1, w_c 0.01 (configs/experiment/s2q_shift.yaml)
COMMON = ["env=matrix_s2q_shift", "algo.eps_anneal_steps=20000"]  # §10.2's schedule for the baselines


def follow_steps(greedy: np.ndarray, steps: np.ndarray, target: tuple[int, ...], shift_at: int) -> float:
    """Env steps after the shift until the greedy joint action is `target` at every later point (inf if never)."""
    hit = np.all(greedy == np.asarray(target), axis=-1)
    for p in np.nonzero(steps >= shift_at)[0]:
        if hit[p:].all():
            return float(steps[p] - shift_at)
    return float("inf")


def run_group(algo: str, names: list[str], seeds: int, every: int, extra: list[str], preset: bool) -> list[dict]:
    """One vmapped program for games of one shape and shift time -> a result dict per game."""
    before, after = [GAMES[n][0] for n in names], [GAMES[n][1] for n in names]
    shift_at, total = GAMES[names[0]][2:]
    overrides = PRESET.get(algo, []) if preset else []
    cfg = make_cfg(f"algo={algo}", *COMMON, *overrides, *extra, f"num_seeds={seeds}")
    t0 = time.perf_counter()
    out = train_matrix_games(
        cfg, before, seeds, total // cfg.algo.num_envs, points=total // every, payoffs_after=after, shift_at=shift_at
    )
    wall = time.perf_counter() - t0
    results = []
    for g, name in enumerate(names):
        steps = out["env_steps"][g][0]
        at_shift = int(np.searchsorted(steps, shift_at)) - 1  # the last point of phase 1
        old, new = optimum(before[g]), optimum(after[g])
        greedy = out["greedy"][g]
        follow = np.array([follow_steps(greedy[s], steps, new, shift_at) for s in range(seeds)])
        res = {
            "algo": algo,
            "game": name,
            "seeds": seeds,
            "wall": wall / len(names),
            "old_at_shift": int((greedy[:, at_shift] == np.asarray(old)).all(-1).sum()),
            "followed": int(np.isfinite(follow).sum()),
            "follow": follow,
        }
        if "subvalue_greedy" in out:  # [S, P, K+1, n]
            subs = out["subvalue_greedy"][g][:, at_shift, 1:]
            res["new_in_subvalues"] = int((subs == np.asarray(new)).all(-1).any(-1).sum())
        results.append(res)
    return results


def row(r: dict, label: str) -> str:
    follow = ", ".join("never" if np.isinf(x) else f"{x / 1000:.0f}k" for x in r["follow"])
    med = np.median(r["follow"])
    return (
        f"| {label} | {r['algo']} | {r['game']} | {r['old_at_shift']}/{r['seeds']} | "
        f"{r.get('new_in_subvalues', '–')}{'/' + str(r['seeds']) if 'new_in_subvalues' in r else ''} | "
        f"{r['followed']}/{r['seeds']} | {'never' if np.isinf(med) else f'{med:.0f}'} | {follow} | "
        f"{r['wall']:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algos", nargs="+", default=["s2q", "ow_qmix"])
    parser.add_argument("--games", nargs="+", default=list(GAMES), choices=list(GAMES))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--every", type=int, default=2000)
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every algorithm")
    parser.add_argument("--no-preset", action="store_true", help="S2Q at its yaml defaults, not experiment=s2q_shift")
    parser.add_argument("--label", default="preset", help="the settings column of the table")
    args = parser.parse_args()
    groups: dict[tuple, list[str]] = {}
    for name in args.games:  # one program per (agents, shift time, budget)
        before, _, shift_at, total = GAMES[name]
        groups.setdefault((np.ndim(before), shift_at, total), []).append(name)
    lines = [
        "| settings | algo | game | seeds greedy on the old optimum at the shift | S2Q: seeds with the new "
        "optimum among sub-values 1..K at the shift | seeds on the new optimum for good | median env steps "
        "to it after the shift | per seed | wall s per game |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for algo in args.algos:
        for names in groups.values():
            for r in run_group(algo, names, args.seeds, args.every, args.extra, not args.no_preset):
                lines.append(row(r, args.label))
                print(lines[-1], flush=True)
    save_table(f"shift_games_{args.label}", "\n".join(lines))


if __name__ == "__main__":
    main()
