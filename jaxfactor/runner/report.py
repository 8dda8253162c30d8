"""Host-side reductions of a run's metrics and its final report: per-chunk summaries across updates,
aggregates across lanes, divergence detection, the final result's per-lane statistics and its console text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from jaxfactor.config import RunConfig


def aggregate(values: np.ndarray) -> dict[str, float]:
    """Across lanes: mean, IQM (mean of the middle 50%), min, max."""
    v = np.sort(np.asarray(values, np.float64))
    lo, hi = int(np.floor(0.25 * len(v))), int(np.ceil(0.75 * len(v)))
    return {"mean": float(v.mean()), "iqm": float(v[lo:hi].mean() if hi > lo else v.mean()),
            "min": float(v.min()), "max": float(v.max())}


def chunk_summary(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """[L, U] per-update metrics -> [L] per chunk (train metrics averaged over learning updates)."""
    out = {}
    for k, v in metrics.items():
        if k == "env_steps":
            out[k] = v[:, -1]
        elif k.startswith("train/") and k != "train/learning":
            with np.errstate(all="ignore"):
                out[k] = np.nanmean(np.where(np.isfinite(v), v, np.nan), axis=1) if np.isfinite(v).any() else \
                    np.full(v.shape[0], np.nan)
        else:
            out[k] = v.mean(axis=1)
    return out


def nonfinite_losses(metrics: dict[str, np.ndarray]) -> dict[int, list[str]]:
    """Lanes (seeds, or seed x grid point) whose loss went NaN/inf on an update that learned, with the loss
    names. [L, U] per-update metrics; NaN before learning starts is the learn step's placeholder, not a failure."""
    learning = np.asarray(metrics["train/learning"]) > 0
    out: dict[int, list[str]] = {}
    for key, values in sorted(metrics.items()):
        if key.startswith("train/") and key.endswith("/loss"):
            for lane in np.flatnonzero((learning & ~np.isfinite(values)).any(axis=1)):
                out.setdefault(int(lane), []).append(key)
    return out


def final_stats(final: dict[str, np.ndarray], has_win_flag: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"eval_return": final["eval/return"].tolist(),
                           "eval_return_mean": float(final["eval/return"].mean())}
    if has_win_flag:
        out["eval_win_rate"] = final["eval/win_rate"].tolist()
        out["eval_win_rate_mean"] = float(final["eval/win_rate"].mean())
    return out


def progress_postfix(summary: dict[str, np.ndarray], last_eval: dict[str, np.ndarray], steps_per_s: float,
                     has_win_flag: bool) -> dict[str, str]:
    """The progress bar's short status of a chunk."""
    post = {"return": f"{summary['rollout/return'].mean():.2f}", "steps/s": f"{steps_per_s:.0f}"}
    if has_win_flag:
        post["win"] = f"{summary['rollout/win_rate'].mean():.2f}"
    if last_eval:
        post["eval_return"] = f"{last_eval['eval/return'].mean():.2f}"
        if has_win_flag:
            post["eval_win"] = f"{last_eval['eval/win_rate'].mean():.2f}"
    return post


def print_result(cfg: RunConfig, result: dict[str, Any], run_dir: Path) -> None:
    print(f"\n== {result['algo']} on {result['env']}: {result['num_seeds']} seeds, "
          f"{result['env_steps']:.0f} env steps each, {result['wall_s']:.1f}s "
          f"(compile {result['compile_s']:.1f}s, {result['steps_per_s']:.0f} env steps/s over all seeds)")
    ret = np.asarray(result["final"]["eval_return"])
    print(f"greedy eval return per seed: {np.array2string(ret, precision=2)} (mean {ret.mean():.2f})")
    if "eval_win_rate" in result["final"]:
        win = np.asarray(result["final"]["eval_win_rate"])
        print(f"greedy eval win rate per seed: {np.array2string(win, precision=2)} (mean {win.mean():.2f})")
    for point in result.get("grid", []):
        line = f"  grid point {point['label']}: greedy eval return mean {point['eval_return_mean']:.2f}"
        if "eval_win_rate_mean" in point:
            line += f", win rate mean {point['eval_win_rate_mean']:.2f}"
        print(line)
    if "matrix" in result:
        from jaxfactor.matrix_study import format_matrix_report

        tables = {k: np.asarray(result["matrix"][k]) for k in ("q_tot", "utilities")}
        tables["greedy"] = np.asarray(result["matrix"]["greedy_joint_action"])
        print(format_matrix_report(np.asarray(result["matrix"]["payoff"]), tables))
    if result["diverged_lanes"]:
        print(f"DIVERGED (non-finite losses) lanes: {', '.join(result['diverged_lanes'])}; see summary.json")
    print(f"outputs: {run_dir}/summary.json, metrics.jsonl, config.json")
