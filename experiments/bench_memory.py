"""Peak memory of a short training run against the state it holds (issue 21 item 5): replay, parameters,
targets and optimiser state from their abstract shapes, and the process's peak RSS after `train.run`
(compile, collection, learning, evaluation and, with --checkpoint-buffer, the replay written to the
checkpoint). One configuration per process: RSS peaks never go down.

    python -m experiments.bench_memory --env predator_prey_p0 --seeds 16 --buffer 512 [--checkpoint-buffer]
    python -m experiments.bench_memory --seeds 16 --buffer 5000 \
        --extra runner.lane_groups=16 max_buffer_memory_fraction=0.7
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time

import jax

from experiments.common import make_cfg
from jaxfactor.runner.lanes import abstract_lanes, build
from jaxfactor.runner.loop import run


def gib(tree) -> float:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)) / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="predator_prey_p0")
    parser.add_argument("--algo", default="qmix")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--buffer", type=int, default=512)
    parser.add_argument("--steps", type=int, default=4000, help="env steps per seed")
    parser.add_argument("--checkpoint-buffer", action="store_true", help="write the replay into the checkpoint")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides, e.g. algo.length_buckets=1")
    args = parser.parse_args()
    cfg = make_cfg(
        f"algo={args.algo}",
        f"env={args.env}",
        f"num_seeds={args.seeds}",
        f"algo.buffer_size={args.buffer}",
        f"total_timesteps={args.steps}",
        f"log_every_steps={args.steps // 2}",
        f"eval_every_steps={args.steps}",
        f"checkpoint.buffer={str(args.checkpoint_buffer).lower()}",
        "env.test_episodes=4",
        *args.extra,
        run_dir=f"{tempfile.mkdtemp()}/run",
    )
    state = abstract_lanes(cfg, build(cfg)[1])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    run(cfg)
    run_s = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    replay, learner = gib(state.buffer), gib(state.learner)
    print(
        json.dumps(
            {
                "env": args.env,
                "algo": args.algo,
                "seeds": args.seeds,
                "buffer": args.buffer,
                "checkpoint_buffer": args.checkpoint_buffer,
                "extra": args.extra,
                "replay_gib": round(replay, 3),
                "learner_gib": round(learner, 4),
                "rss_before_run_gib": round(before, 3),
                "peak_rss_gib": round(peak, 3),
                "peak_over_state": round(peak / (replay + learner), 2),
                "run_s": round(run_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
