"""Greedy return of the untrained policy vs after training, for any algo x env, plus the greedy
evaluation curve of the run (mean over seeds at each evaluation).

    python -m experiments.learning algo=qmix env=predator_prey_p0 num_seeds=2 total_timesteps=1000000

Any `key=value` override of `python -m jaxfactor.train` is accepted. Prints a JSON report and a
markdown curve; the numbers measured are recorded in experiments/README.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from experiments.common import make_cfg
from jaxfactor.config import RunConfig
from jaxfactor.runner.lanes import seed_keys
from jaxfactor.runner.loop import Callback, run

UNTRAINED_STREAM = 0x0123  # evaluation keys of the untrained policy


class EvaluateAtStart(Callback):
    """Greedy evaluation of the exact state `run` starts training from, with the run's own evaluator."""

    def __init__(self, cfg: RunConfig):
        self.cfg, self.stats, self.params = cfg, None, None

    def on_start(self, runner, backend) -> None:
        import jax

        self.params = jax.device_get(runner.learner.params)
        self.stats = backend.evaluate(runner, seed_keys(self.cfg, UNTRAINED_STREAM))


def untrained_then_trained(cfg: RunConfig) -> dict:
    """Evaluate the seeds' initial parameters greedily, train them with `run`, and report both."""
    start = EvaluateAtStart(cfg)
    result = run(cfg, callbacks=[start])
    before = {"return": start.stats["eval/return"].tolist(), "win_rate": start.stats["eval/win_rate"].tolist()}
    after = {"return": result["final"]["eval_return"], "win_rate": result["final"].get("eval_win_rate")}
    curve = []
    for line in (Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "eval/return" in record["per_seed"]:
            curve.append((record["env_steps"], float(np.mean(record["per_seed"]["eval/return"]))))
    return {
        "algo": result["algo"],
        "env": result["env"],
        "num_seeds": cfg.num_seeds,
        "steps_per_seed": result["env_steps"],
        "wall_s": result["wall_s"],
        "steps_per_s": result["steps_per_s"],
        "untrained": before,
        "trained": after,
        "eval_curve": curve,
        "untrained_params": start.params,
    }


def main() -> None:
    overrides = sys.argv[1:]
    cfg = make_cfg(
        *overrides, run_dir="runs/experiments/learning-" + "-".join(o.replace("=", "_") for o in overrides[:2])
    )
    report = untrained_then_trained(cfg)
    print(json.dumps({k: v for k, v in report.items() if k != "untrained_params"}, indent=2))
    print(
        f"\n{report['algo']} on {report['env']}, {report['num_seeds']} seeds: greedy return untrained "
        f"{np.mean(report['untrained']['return']):.2f} -> trained {np.mean(report['trained']['return']):.2f} "
        f"after {report['steps_per_seed']:.0f} env steps per seed ({report['wall_s']:.0f}s)"
    )
    print("| env steps | " + " | ".join(f"{s / 1000:.0f}k" for s, _ in report["eval_curve"]) + " |")
    print("|---|" + "---|" * len(report["eval_curve"]))
    print("| greedy return (mean) | " + " | ".join(f"{r:.1f}" for _, r in report["eval_curve"]) + " |")


if __name__ == "__main__":
    main()
