"""The matrix games' run report: every seed's learned joint tables in summary.json (`matrix`) and under the
printed result, registered for env.kind=matrix in `ENV_REPORTS`."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxfactor.envs.base import ENV_REPORTS, EnvReport
from jaxfactor.envs.matrix_games import MatrixGame, joint_tables


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


def matrix_summary(env: MatrixGame, algo: Any, params: Any, env_steps: float, diverged: np.ndarray) -> dict[str, list]:
    """summary.json's `matrix` entry: the payoff in force and every lane's learned Q_tot table, greedy joint
    action and utilities (params [lanes, ...]); null for a diverged lane, whose argmax over NaN means nothing."""
    _, ts = env.reset(jax.random.key(0))
    tables = jax.device_get(jax.vmap(lambda p: joint_tables(algo, p, ts))(params))
    per_lane = lambda x: [None if d else v for v, d in zip(np.asarray(x).tolist(), diverged)]  # noqa: E731
    return {
        "payoff": env.payoff_in_force(env_steps).tolist(),
        "q_tot": per_lane(tables["q_tot"]),
        "greedy_joint_action": per_lane(tables["greedy"]),
        "utilities": per_lane(tables["utilities"]),
    }


ENV_REPORTS.register("matrix")(
    EnvReport(
        key="matrix",
        summarise=matrix_summary,
        format=lambda entry: format_matrix_report(np.asarray(entry["payoff"]), entry),
    )
)
