"""`python -m jaxfactor.plot <run_dir> [<run_dir> ...] [--metric eval/return] [--out curves.png]`

Learning curves from runs' metrics.jsonl: the IQM across seeds with stratified-bootstrap 95% confidence
bands (rliable), one line per algorithm (per grid point for sweeps). Runs with the same label (e.g. the
same algorithm launched with different base seeds) are pooled as more seeds when their x points match.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from jaxfactor.errors import ConfigError, OneLineParser, check_output_path, exit_on_config_error


def load_curves(run_dir: str | Path, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label -> (env steps [P], scores [seeds, P]) for the chunks where `metric` was recorded."""
    run_dir = Path(run_dir)
    metrics_file, config_file = run_dir / "metrics.jsonl", run_dir / "config.json"
    if not metrics_file.exists() or not config_file.exists():
        raise ConfigError(f"{run_dir} is not a run directory (needs metrics.jsonl and config.json)")
    from jaxfactor.loggers import read_metrics, read_run_config

    config = read_run_config(run_dir)
    records = read_metrics(metrics_file)
    points = [r for r in records if metric in r["per_seed"]]
    if not points:
        known = sorted({k for r in records for k in r["per_seed"]})
        raise ConfigError(f"--metric {metric} was never recorded in {metrics_file}; allowed: {', '.join(known)}")
    steps = np.array([r["env_steps"] for r in points])
    values = np.array([r["per_seed"][metric] for r in points], np.float64).T  # [grid*seeds, P]
    name = f"{config['algo']['name']} ({config['env']['name']})"
    sweep = {k: v for k, v in config.get("sweep", {}).get("algo", {}).items() if v}
    if not sweep:
        return {name: (steps, values)}
    from jaxfactor.config import from_dict
    from jaxfactor.runner.lanes import grid_label

    grid = from_dict(config).grid
    per_point = values.reshape(len(grid), config["num_seeds"], -1)
    return {f"{name} {grid_label(p)}": (steps, per_point[g]) for g, p in enumerate(grid)}


def iqm_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], reps: int = 2000, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """label -> (steps, IQM [P], 95% CI [2, P]) with rliable's stratified bootstrap over seeds."""
    from rliable import library as rly
    from rliable import metrics

    def iqm(scores: np.ndarray) -> np.ndarray:  # scores [runs, tasks, P]
        return np.array([metrics.aggregate_iqm(scores[..., p]) for p in range(scores.shape[-1])])

    np.random.seed(seed)  # rliable's bootstrap draws from numpy's global stream
    scores = {label: v[:, None, :] for label, (_, v) in curves.items()}
    point, interval = rly.get_interval_estimates(scores, iqm, reps=reps)
    return {label: (curves[label][0], point[label], interval[label]) for label in curves}


def plot(run_dirs: list[str], metric: str = "eval/return", out: str | Path = "curves.png", reps: int = 2000) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pooled: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for run_dir in run_dirs:
        for label, curve in load_curves(run_dir, metric).items():
            pooled[label].append(curve)
    curves = {}
    for label, parts in pooled.items():
        if all(np.array_equal(parts[0][0], s) for s, _ in parts):
            curves[label] = (parts[0][0], np.concatenate([v for _, v in parts]))
        else:  # different evaluation points: keep the runs apart
            curves.update({f"{label} #{i}": part for i, part in enumerate(parts)})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, (steps, iqm, ci) in iqm_curves(curves, reps).items():
        n = curves[label][1].shape[0]
        (line,) = ax.plot(steps, iqm, label=f"{label}, {n} seeds")
        ax.fill_between(steps, ci[0], ci[1], color=line.get_color(), alpha=0.2)
    ax.set_xlabel("env steps per seed")
    ax.set_ylabel(f"{metric} (IQM, 95% bootstrap CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def image_suffixes() -> tuple[str, ...]:
    from matplotlib.backend_bases import FigureCanvasBase

    return tuple(f".{ext}" for ext in sorted(FigureCanvasBase.get_supported_filetypes()))


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m jaxfactor.plot", description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+")
    parser.add_argument("--metric", default="eval/return", help="a key of metrics.jsonl's per_seed records")
    parser.add_argument("--out", default="curves.png", help="image path (.png, .pdf, .svg, ...)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")

    def tool() -> None:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        if args.reps < 1:
            raise ConfigError(f"--reps {args.reps} is out of range; allowed: an integer >= 1")
        check_output_path("--out", args.out, image_suffixes())
        print(f"wrote {plot(args.run_dirs, args.metric, args.out, args.reps)}")

    exit_on_config_error(tool)


if __name__ == "__main__":
    main()
