"""QMIX learns SMAX 3m on a CPU: greedy win rate of the untrained policy vs after training.

    python -m experiments.smax_qmix [--steps 100000] [--seeds 2]

Budget: 100k env steps per seed, 2 seeds in one program, about 3-4 minutes on 2 CPU cores.
Numbers measured are recorded in experiments/README.md.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from experiments.common import make_cfg
from experiments.learning import untrained_then_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--run-dir", default="runs/experiments/smax_qmix")
    args = parser.parse_args()
    cfg = make_cfg(
        "algo=qmix",
        "env=smax_3m",
        f"num_seeds={args.seeds}",
        f"total_timesteps={args.steps}",
        "eval_every_steps=20000",
        run_dir=args.run_dir,
    )
    report = untrained_then_trained(cfg)
    print(json.dumps(report, indent=2))
    print(
        f"greedy win rate: untrained {np.mean(report['untrained']['win_rate']):.2f} -> trained "
        f"{np.mean(report['trained']['win_rate']):.2f} after {report['steps_per_seed']:.0f} env steps per seed "
        f"({report['wall_s']:.0f}s)"
    )


if __name__ == "__main__":
    main()
