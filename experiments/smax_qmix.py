"""QMIX learns SMAX 3m on a CPU: greedy win rate of the untrained policy vs after training.

    python -m experiments.smax_qmix [--steps 100000] [--seeds 2]

Budget: 100k env steps per seed, 2 seeds in one program, about 3-4 minutes on 2 CPU cores.
Numbers measured are recorded in experiments/README.md.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np

from experiments.common import make_cfg
from jaxfactor.runner.anakin import init_runner, make_evaluate
from jaxfactor.train import build, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--run-dir", default="runs/experiments/smax_qmix")
    args = parser.parse_args()
    cfg = make_cfg("algo=qmix", "env=smax_3m", f"num_seeds={args.seeds}", f"total_timesteps={args.steps}",
                   "eval_every_steps=20000", run_dir=args.run_dir)
    env, algo, _ = build(cfg)
    keys = jax.random.split(jax.random.key(cfg.seed), cfg.num_seeds)
    untrained = jax.vmap(lambda k: init_runner(algo, env, 1, k))(keys).learner.params
    stats = jax.jit(jax.vmap(make_evaluate(algo, env, cfg.env.test_episodes)))(
        untrained, jax.random.split(jax.random.key(123), cfg.num_seeds))
    before = {"win_rate": np.asarray(stats["won"]).mean(1).tolist(), "return": np.asarray(stats["return"]).mean(1).tolist()}
    result = run(cfg)
    after = {"win_rate": result["final"]["eval_win_rate"], "return": result["final"]["eval_return"]}
    report = {"steps_per_seed": result["env_steps"], "wall_s": result["wall_s"], "untrained": before, "trained": after}
    print(json.dumps(report, indent=2))
    print(f"greedy win rate: untrained {np.mean(before['win_rate']):.2f} -> trained {np.mean(after['win_rate']):.2f} "
          f"after {result['env_steps']:.0f} env steps per seed ({result['wall_s']:.0f}s)")


if __name__ == "__main__":
    main()
