"""Matrix-game studies: one algorithm on several payoff tables x seeds in one compiled program (the env-variant
trainer of `jaxfactor/runner/variants.py`), read out as every lane's learned joint tables.

Used by the matrix-game regressions (ALGORITHMS.md §11.1) in tests and by the experiment scripts: M1, M3, a
moved-optimum variant and a shifted payoff cost one compilation.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from jaxfactor.config import RunConfig
from jaxfactor.envs.matrix_games import MatrixGame, joint_tables, payoff_array
from jaxfactor.runner.variants import train_env_variants


def train_matrix_games(
    cfg: RunConfig,
    payoffs: Sequence,
    seeds_per_game: int,
    updates: int,
    points: int | None = None,
    payoffs_after: Sequence | None = None,
    shift_at: int | None = None,
) -> dict[str, np.ndarray]:
    """Every lane's joint tables (`joint_tables`: utilities, greedy, q_tot, q_star, q_r, v_r where present)
    stacked [G, S, ...], plus the final-update `metrics`. With `points`, the tables, `env_steps` and metrics
    after every updates // points updates, stacked [G, S, P, ...]. With `payoffs_after` (one per game) and
    `shift_at`, game g pays payoffs_after[g] from shift_at env steps on (the matrix env's payoff shift)."""
    tables = np.stack([payoff_array(p) for p in payoffs])  # validated host-side, [G, A, ..., A]
    if (payoffs_after is None) != (shift_at is None):
        raise ValueError("payoffs_after and shift_at go together")
    afters = tables if payoffs_after is None else np.stack([payoff_array(p, "payoff_after") for p in payoffs_after])
    if afters.shape != tables.shape:
        raise ValueError(f"payoffs_after has shape {afters.shape}; the games have {tables.shape}")

    def make_env(p) -> MatrixGame:
        if shift_at is None:
            return MatrixGame(p["payoff"], validated=True)
        return MatrixGame(p["payoff"], payoff_after=p["after"], shift_at=shift_at, validated=True)

    def probe(algo, env, runner):
        return joint_tables(algo, runner.learner.params, env.reset(jax.random.key(0))[1])

    out = train_env_variants(cfg, make_env, {"payoff": tables, "after": afters}, seeds_per_game, updates, probe, points)
    extra = {} if points is None else {"env_steps": out["env_steps"]}
    return {**out["probe"], **extra, "metrics": out["metrics"], "payoffs": tables, "payoffs_after": afters}


def train_matrix_curve(cfg: RunConfig, seeds: int, updates_per_point: int, points: int) -> dict[str, np.ndarray]:
    """Train `seeds` seeds on the configured matrix game (payoff shift included) in one program and tabulate
    its joint tables after every `updates_per_point` updates: `train_matrix_games` with one game.
    Returns arrays [S, P, ...] plus `env_steps` [S, P]."""
    p = cfg.env.params
    shift = {} if p.get("shift_at") is None else {"payoffs_after": [p["payoff_after"]], "shift_at": p["shift_at"]}
    out = train_matrix_games(cfg, [p["payoff"]], seeds, updates_per_point * points, points=points, **shift)
    return {k: v[0] for k, v in out.items() if k not in ("metrics", "payoffs", "payoffs_after")}
