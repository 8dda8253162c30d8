"""Run one claim of ALGORITHMS.md §11/§14 at its paper preset and print the measured result beside the paper's.

    python -m experiments.reproduce <claim> [--budget ENV_STEPS] [--seeds N] [--fake] [override ...]
    python -m experiments.reproduce --list

The preset (`configs/experiment/`) carries the paper's settings; --budget and --seeds shrink a run to what a
machine allows (the printed line says so), --fake runs a host simulator's stand-in (protocol only: its
numbers say nothing about StarCraft or football). Matrix claims report the rate of seeds whose greedy joint
action is the payoff's optimum with Q_tot there within 0.5; the others the greedy return or win rate per seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import numpy as np

from experiments.common import make_cfg


@dataclasses.dataclass(frozen=True)
class Claim:
    preset: str
    measure: str  # optimum | return | win_rate
    paper: str


CLAIMS = {
    "P1": Claim("pow_matrix_m3", "optimum", "POW-QMIX greedy (A,A), Q_tot(A,A) ~ 8 (POW §4.1)"),
    "P1-cw": Claim("cw_matrix_m3", "optimum", "CW-QMIX greedy (A,A) (POW §4.1)"),
    "N1": Claim("nm_matrix_m4", "optimum", "greedy (A,A) = 12, table within 0.1 (NM Table 1(a-c)); a reported rate"),
    "N2": Claim("nm_matrix_m5", "optimum", "greedy (A,A) = 12 (NM Table 1(d-f)); a reported rate"),
    "E1": Claim("me_matrix_m1", "optimum", "greedy (A,A) = 8 (ME Table 1); a reported rate"),
    "S1": Claim("s2q_shift", "optimum", "S2Q follows the optimum to (C,C) after the shift (S2Q Fig. 1)"),
    "PP1-cw": Claim("wqmix_cw_predator_prey_p2", "return", "positive median test return at p = -2 (WQMIX Fig. 2)"),
    "PP1-ow": Claim("wqmix_ow_predator_prey_p2", "return", "positive median test return at p = -2 (WQMIX Fig. 2)"),
    **{
        f"PP2-p{p}": Claim(f"pow_predator_prey_p{p}", "return", f"POW-QMIX ~ 40 at p = -{p} (POW Fig. 3, Table 1)")
        for p in (3, 4, 5)
    },
    "crossroads": Claim("pow_intersection", "win_rate", "POW-QMIX success 0.92, QMIX 0.28 (POW Table 1)"),
    **{
        f"pow-{m}": Claim(f"pow_smac_{m}", "win_rate", f"POW-QMIX win rate {w} (POW Table 1)")
        for m, w in (("3s_vs_5z", 1.00), ("corridor", 0.95), ("MMM2", 0.98))
    },
    **{
        f"pow-smacv2-{r}": Claim(f"pow_smacv2_{r}", "return", f"POW-QMIX test return {v} (POW Table 1)")
        for r, v in (("protoss", 18.8), ("terran", 19.0), ("zerg", 18.4))
    },
    **{
        f"s2q-{m}": Claim(f"s2q_smac_{m}", "win_rate", "S2Q 73.4% averaged over SMAC-Hard+ (S2Q Table 1)")
        for m in ("5m_vs_6m", "MMM2", "27m_vs_30m", "corridor", "6h_vs_8z", "3s5z_vs_3s6z")
    },
    **{
        f"me-smacv2-{r}": Claim(f"me_smacv2_{r}", "win_rate", f"ME-QMIX win rate {v}% (ME Table 2)")
        for r, v in (("protoss", 75.9), ("terran", 70.2), ("zerg", 50.8))
    },
}


def measured(result: dict, measure: str) -> str:
    final = result["final"]
    if measure == "optimum":
        m = result["matrix"]
        payoff = np.asarray(m["payoff"])
        opt = np.unravel_index(np.argmax(payoff), payoff.shape)
        hits = [
            g is not None and tuple(g) == tuple(int(i) for i in opt) and abs(np.asarray(q)[opt] - payoff[opt]) <= 0.5
            for g, q in zip(m["greedy_joint_action"], m["q_tot"])
        ]
        return f"{sum(hits)}/{len(hits)} seeds at the optimum {tuple(int(i) for i in opt)} (greedy, Q_tot within 0.5)"
    values = final["eval_win_rate"] if measure == "win_rate" else final["eval_return"]
    kept = [v for v in values if v is not None]
    return f"greedy {measure.replace('_', ' ')} per seed {[round(v, 2) for v in kept]}, median {np.median(kept):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("claim", nargs="?", help=f"one of: {', '.join(CLAIMS)}")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--budget", type=int, help="env steps per seed (default: the paper's)")
    parser.add_argument("--seeds", type=int, help="seeds (default: the preset's)")
    parser.add_argument("--fake", action="store_true", help="env.simulator=fake for SMAC/SMACv2/GRF")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    if args.list or args.claim is None:
        for name, c in CLAIMS.items():
            print(f"{name:20s} experiment={c.preset:30s} {c.paper}")
        return
    if args.claim not in CLAIMS:
        sys.exit(f"unknown claim '{args.claim}'; allowed: {', '.join(CLAIMS)}")
    from jaxfactor.runner.loop import run

    claim = CLAIMS[args.claim]
    overrides = [
        f"experiment={claim.preset}",
        *(["env.simulator=fake"] if args.fake else []),
        *([f"total_timesteps={args.budget}"] if args.budget else []),
        *([f"num_seeds={args.seeds}"] if args.seeds else []),
        *args.overrides,
    ]
    cfg = make_cfg(*overrides, run_dir=f"runs/reproduce/{args.claim}")
    result = run(cfg)
    paper_budget = make_cfg(
        f"experiment={claim.preset}", *(["env.simulator=fake"] if args.fake else [])
    ).total_timesteps
    scale = "" if cfg.total_timesteps == paper_budget else f" (the paper's budget: {paper_budget} env steps)"
    print(f"\n{args.claim}: paper: {claim.paper}")
    print(
        f"{args.claim}: ours:  {measured(result, claim.measure)}; {cfg.num_seeds} seeds, "
        f"{result['env_steps']:.0f} env steps each{scale}"
    )
    print(f"command: python -m experiments.reproduce {' '.join(sys.argv[1:])}")


if __name__ == "__main__":
    main()
