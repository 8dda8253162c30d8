"""Matrix-game tooling: the learned joint tables a run reports, and training one algorithm on several games
and seeds in ONE compiled program (lanes = games x seeds, the lane key scheme of `runner/lanes.py`).

Used by the matrix-game regressions (ALGORITHMS.md §11.1) in tests and experiments: the payoff is a
vmapped input, so M1, M3 and a moved-optimum variant cost one compilation and share the vector units.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfactor.algos import make_algo
from jaxfactor.config import RunConfig
from jaxfactor.envs.matrix_games import MatrixGame, payoff_array
from jaxfactor.runner.anakin import make_chunk
from jaxfactor.runner.lanes import seed_keys
from jaxfactor.runner.learn import init_lane, over_lanes


def _label(actions: Any) -> str:
    return "(" + ",".join(chr(ord("A") + int(a)) for a in actions) + ")"


def format_matrix_report(payoff: np.ndarray, matrix: dict[str, list]) -> str:
    """Readable learned joint tables of summary.json's `matrix` entry (2-agent games as grids; n-agent as a flat
    listing). Diverged lanes (null tables) are named and left out of the count of optimal seeds."""
    lines = []
    n = payoff.ndim
    best = np.unravel_index(np.argmax(payoff), payoff.shape)
    lines.append(f"payoff (rows: agent 0, columns: agent 1); optimum {_label(best)} = {payoff.max():g}")
    healthy = [s for s, g in enumerate(matrix["greedy_joint_action"]) if g is not None]
    hits = sum(payoff[tuple(matrix["greedy_joint_action"][s])] == payoff.max() for s in healthy)
    left_out = len(matrix["greedy_joint_action"]) - len(healthy)
    lines.append(
        f"{hits}/{len(healthy)} seeds act greedily on an optimal joint action"
        + (f" ({left_out} diverged, left out)" if left_out else "")
    )
    if n == 2:
        lines.append(np.array2string(payoff, precision=2, suppress_small=True))
    for s, g in enumerate(matrix["greedy_joint_action"]):
        if g is None:
            lines.append(f"seed {s}: DIVERGED (non-finite losses): no learned table")
            continue
        q = np.asarray(matrix["q_tot"][s])
        lines.append(
            f"seed {s}: greedy joint action {_label(g)}  payoff there {payoff[tuple(g)]:g}  "
            f"Q_tot there {q[tuple(g)]:.2f}"
        )
        if n == 2:
            lines.append(
                "  learned Q_tot:\n  " + np.array2string(q, precision=2, suppress_small=True).replace("\n", "\n  ")
            )
        for i in range(n):
            lines.append(
                f"  utilities Q_{i}: "
                + np.array2string(np.asarray(matrix["utilities"][s][i]), precision=2, suppress_small=True)
            )
    return "\n".join(lines)


def matrix_summary(env: MatrixGame, algo, params, env_steps: float, diverged: np.ndarray) -> dict[str, list]:
    """summary.json's `matrix` entry: the payoff in force and every lane's learned Q_tot table, greedy joint
    action and utilities (params [lanes, ...]); null for a diverged lane, whose argmax over NaN means nothing."""
    _, ts = env.reset(jax.random.key(0))
    tables = jax.device_get(jax.vmap(lambda p: algo.extras["q_table"](p, ts))(params))
    per_lane = lambda x: [None if d else v for v, d in zip(np.asarray(x).tolist(), diverged)]  # noqa: E731
    return {
        "payoff": env.payoff_in_force(env_steps).tolist(),
        "q_tot": per_lane(tables["q_tot"]),
        "greedy_joint_action": per_lane(tables["greedy"]),
        "utilities": per_lane(tables["utilities"]),
    }


def permute_actions(payoff: Sequence, *orders: Sequence[int]) -> list:
    """Relabel each agent's actions: entry [u_1, ..., u_n] of the result is payoff[orders[0][u_1], ...].
    Moves the optimum to another cell without changing the game (the regressions must not depend on it)."""
    table = payoff_array(payoff)
    for axis, order in enumerate(orders):
        table = np.take(table, order, axis=axis)
    return table.tolist()


def optimum(payoff: Sequence) -> tuple[int, ...]:
    """The joint action (one index per agent) of the payoff's largest entry."""
    table = np.asarray(payoff)
    return tuple(int(i) for i in np.unravel_index(np.argmax(table), table.shape))


def three_agent_m3() -> list:
    """A 3-agent analogue of M3 (ALGORITHMS.md §10.1): all A 8, all C 7.9 (the local optimum), A for some but
    not all agents -12, otherwise 0."""
    table = np.zeros((3, 3, 3))
    for u in itertools.product(range(3), repeat=3):
        n_a = sum(a == 0 for a in u)
        table[u] = 8 if n_a == 3 else (-12 if n_a > 0 else (7.9 if all(a == 2 for a in u) else 0))
    return table.tolist()


def train_matrix_games(
    cfg: RunConfig,
    payoffs: Sequence,
    seeds_per_game: int,
    updates: int,
    points: int | None = None,
    payoffs_after: Sequence | None = None,
    shift_at: int | None = None,
) -> dict[str, np.ndarray]:
    """Returns q_table outputs stacked [G, S, ...] (utilities, greedy, q_tot, q_star, q_r, v_r where present)
    plus the final-update metrics. With `points`, the tables and metrics after every updates // points
    updates instead, stacked [G, S, P, ...]. With `payoffs_after` (one per game) and `shift_at`, game g pays
    payoffs_after[g] from shift_at env steps on (the matrix env's payoff shift)."""
    tables = np.stack([payoff_array(p) for p in payoffs])  # validated host-side, [G, A, ..., A]
    G = tables.shape[0]
    if (payoffs_after is None) != (shift_at is None):
        raise ValueError("payoffs_after and shift_at go together")
    afters = tables if payoffs_after is None else np.stack([payoff_array(p, "payoff_after") for p in payoffs_after])
    if afters.shape != tables.shape:
        raise ValueError(f"payoffs_after has shape {afters.shape}; the games have {tables.shape}")
    env0 = MatrixGame(tables[0], validated=True)
    algo = make_algo(cfg.algo, cfg.env, env0.spec)
    a = cfg.algo

    def lane(key, payoff, after):
        env = (
            MatrixGame(payoff, validated=True)
            if shift_at is None
            else MatrixGame(payoff, payoff_after=after, shift_at=shift_at, validated=True)
        )
        runner = init_lane(algo, a.buffer_size, key)
        _, ts = env.reset(key)
        if points is None:
            runner, metrics = make_chunk(algo, env, a.num_envs, a.batch_size, updates)(runner)
            return algo.extras["q_table"](runner.learner.params, ts), jax.tree.map(lambda x: x[-1], metrics)
        return tables_over_training(cfg, algo, env, runner, ts, updates // points, points)

    keys = seed_keys(dataclasses.replace(cfg, num_seeds=seeds_per_game), blocks=G)  # seed s: the same key in every game
    per_lane = lambda t: jnp.repeat(jnp.asarray(t), seeds_per_game, axis=0)  # noqa: E731
    out, metrics = jax.device_get(jax.jit(over_lanes(lane))(keys, per_lane(tables), per_lane(afters)))
    reshape = lambda x: np.asarray(x).reshape((G, seeds_per_game) + np.shape(x)[1:])  # noqa: E731
    return {
        **{k: reshape(v) for k, v in out.items()},
        "metrics": {k: reshape(v) for k, v in metrics.items()},
        "payoffs": tables,
        "payoffs_after": afters,
    }


def tables_over_training(
    cfg: RunConfig, algo, env, runner, ts, updates_per_point: int, points: int
) -> tuple[dict, dict]:
    """One lane: `points` times, train `updates_per_point` updates, then tabulate `q_table` at `ts` (plus
    `env_steps`) and keep the last update's metrics. -> (tables [P, ...], metrics [P, ...])."""
    chunk = make_chunk(algo, env, cfg.algo.num_envs, cfg.algo.batch_size, updates_per_point)

    def point(runner, _):
        runner, metrics = chunk(runner)
        tables = {**algo.extras["q_table"](runner.learner.params, ts), "env_steps": runner.learner.t_env}
        return runner, (tables, jax.tree.map(lambda x: x[-1], metrics))

    return jax.lax.scan(point, runner, None, length=points)[1]


def train_matrix_curve(cfg: RunConfig, seeds: int, updates_per_point: int, points: int) -> dict[str, np.ndarray]:
    """Train `seeds` seeds on the configured matrix game (payoff shift included) in one program and
    tabulate `q_table` after every `updates_per_point` updates: `train_matrix_games` with one game.
    Returns arrays [S, P, ...] plus `env_steps` [S, P]."""
    p = cfg.env.params
    shift = {} if p.get("shift_at") is None else {"payoffs_after": [p["payoff_after"]], "shift_at": p["shift_at"]}
    out = train_matrix_games(cfg, [p["payoff"]], seeds, updates_per_point * points, points=points, **shift)
    return {k: v[0] for k, v in out.items() if k not in ("metrics", "payoffs", "payoffs_after")}
