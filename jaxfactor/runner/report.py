"""Host-side reductions of a run's metrics and its final report: per-chunk summaries across updates,
aggregates across lanes, divergence detection, the final result's per-lane statistics and its console text."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxfactor.config import RunConfig

if TYPE_CHECKING:
    from jaxfactor.envs.base import EnvReport


def aggregate(values: np.ndarray) -> dict[str, float]:
    """Across lanes: mean, IQM (mean of the middle 50%), min, max."""
    v = np.sort(np.asarray(values, np.float64))
    lo, hi = int(np.floor(0.25 * len(v))), int(np.ceil(0.75 * len(v)))
    return {
        "mean": float(v.mean()),
        "iqm": float(v[lo:hi].mean() if hi > lo else v.mean()),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def chunk_summary(metrics: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """[L, U] per-update metrics -> [L] per chunk (train metrics averaged over learning updates)."""
    out = {}
    for k, v in metrics.items():
        if k == "env_steps":
            out[k] = v[:, -1]
        elif (k.startswith("train/") and k != "train/learning") or k.startswith("rollout/"):  # NaN: no update/episode
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a lane with no finite value (diverged) is NaN
                out[k] = (
                    np.nanmean(np.where(np.isfinite(v), v, np.nan), axis=1)
                    if np.isfinite(v).any()
                    else np.full(v.shape[0], np.nan)
                )
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


def diverged_mask(diverged: dict[int, Any], num_lanes: int) -> np.ndarray:
    """[L] bool: the lanes whose losses went non-finite."""
    return np.isin(np.arange(num_lanes), list(diverged))


def lanes_json(diverged: dict[int, Any]) -> dict[str, Any]:
    return {str(lane): info for lane, info in sorted(diverged.items())}


def aggregates(values: dict[str, np.ndarray], healthy: np.ndarray) -> dict[str, dict[str, float]]:
    """Aggregates over the lanes that did not diverge, for every metric finite on all of them."""
    out = {}
    for k, v in values.items():
        kept = np.asarray(v)[healthy]
        if kept.size and np.isfinite(kept).all():
            out[k] = aggregate(kept)
    return out


def final_stats(final: dict[str, np.ndarray], has_win_flag: bool, diverged: np.ndarray) -> dict[str, Any]:
    """Per-lane final greedy results. A diverged lane's are null (its greedy policy acts on NaN values, an argmax
    that picks action 0) and it is left out of the means, which are null when every lane diverged."""
    ok = ~np.asarray(diverged, bool)
    per_lane = lambda v: [float(x) if k else None for x, k in zip(v, ok)]  # noqa: E731
    mean = lambda v: float(np.asarray(v)[ok].mean()) if ok.any() else None  # noqa: E731
    out: dict[str, Any] = {
        "eval_return": per_lane(final["eval/return"]),
        "eval_return_mean": mean(final["eval/return"]),
        "diverged": (~ok).tolist(),
    }
    if has_win_flag:
        out["eval_win_rate"] = per_lane(final["eval/win_rate"])
        out["eval_win_rate_mean"] = mean(final["eval/win_rate"])
    return out


def ranked_grid(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Grid points with a `rank` (1 = best final greedy return): points where a seed diverged come after every
    point where none did, a point whose seeds all diverged last."""

    def key(i: int):
        p = points[i]
        mean = p["eval_return_mean"]
        return (any(p["diverged"]), mean is None, -(mean if mean is not None else 0.0))

    for rank, i in enumerate(sorted(range(len(points)), key=key), start=1):
        points[i]["rank"] = rank
    return points


def _per_lane_text(values: list) -> str:
    return "[" + " ".join("DIVERGED" if v is None else f"{v:.2f}" for v in values) + "]"


def _mean_text(mean: float | None) -> str:
    return "none: every lane diverged" if mean is None else f"{mean:.2f}"


def progress_postfix(
    summary: dict[str, np.ndarray], last_eval: dict[str, np.ndarray], steps_per_s: float, has_win_flag: bool
) -> dict[str, str]:
    """The progress bar's short status of a chunk."""
    post = {"return": f"{summary['rollout/return'].mean():.2f}", "steps/s": f"{steps_per_s:.0f}"}
    if has_win_flag:
        post["win"] = f"{summary['rollout/win_rate'].mean():.2f}"
    if last_eval:
        post["eval_return"] = f"{last_eval['eval/return'].mean():.2f}"
        if has_win_flag:
            post["eval_win"] = f"{last_eval['eval/win_rate'].mean():.2f}"
    return post


def env_report(cfg: RunConfig) -> EnvReport | None:
    """The report the run's env kind registered, if any (the matrix games' learned tables)."""
    from jaxfactor.envs import ENV_REPORTS

    return ENV_REPORTS.get(cfg.env.kind) if cfg.env.kind in ENV_REPORTS else None


def print_result(cfg: RunConfig, result: dict[str, Any], run_dir: Path) -> None:
    print(
        f"\n== {result['algo']} on {result['env']}: {result['num_seeds']} seeds, "
        f"{result['env_steps']:.0f} env steps each, {result['wall_s']:.1f}s "
        f"(compile {result['compile_s']:.1f}s, {result['steps_per_s']:.0f} env steps/s over all seeds)"
    )
    final = result["final"]
    print(
        f"greedy eval return per seed: {_per_lane_text(final['eval_return'])} "
        f"(mean {_mean_text(final['eval_return_mean'])})"
    )
    if "eval_win_rate" in final:
        print(
            f"greedy eval win rate per seed: {_per_lane_text(final['eval_win_rate'])} "
            f"(mean {_mean_text(final['eval_win_rate_mean'])})"
        )
    for point in sorted(result.get("grid", []), key=lambda p: p["rank"]):
        line = (
            f"  #{point['rank']} grid point {point['label']}: greedy eval return mean "
            f"{_mean_text(point['eval_return_mean'])}"
        )
        if "eval_win_rate_mean" in point:
            line += f", win rate mean {_mean_text(point['eval_win_rate_mean'])}"
        if any(point["diverged"]):
            line += f" ({sum(point['diverged'])} of {len(point['diverged'])} seeds diverged)"
        print(line)
    if (extra := env_report(cfg)) is not None and extra.key in result:
        print(extra.format(result[extra.key]))
    if "host" in result:
        h = result["host"]
        print(
            f"host simulators: {h['crashes']} crashes, {h['restarts']} worker restarts, {h['invalid_episodes']} "
            f"in-band restarts, {h['discarded_episodes']} episodes discarded ({h['workers']} workers; "
            f"simulator {h['collect_simulator_s']:.1f}s, acting {h['collect_act_s']:.1f}s, learning "
            f"{h['learn_s']:.1f}s)"
        )
    if result["diverged_lanes"]:
        what = "EVERY LANE DIVERGED" if result["all_lanes_diverged"] else "DIVERGED"
        print(
            f"{what} (non-finite losses): lanes {', '.join(result['diverged_lanes'])}, left out of every result "
            "above; see summary.json"
        )
    print(f"outputs: {run_dir}/summary.json, metrics.jsonl, config.json")
