"""jaxfactor at a peer trainer's settings (issue 21 item 8), timed in one process: collection-only updates until
the replay can be sampled, then updates that learn. Prints env steps/s with learning on every update, seconds
per gradient step, seconds per real transition learned, compile time and peak RSS against the training state.
The peers' own commands, timed the same way side by side, are in experiments/README.md (no peer code here).

    python -m experiments.bench_peers --peer jaxmarl [--learning-updates 8] [--extra algo.epochs=1]
    python -m experiments.bench_peers --peer pymarl2 [--learning-updates 20]

jaxmarl: `experiment=jaxmarl_qmix_smax_3m` (JaxMARL's qmix_rnn.py, ql_rnn_smax: 16 envs x 128-step segments,
8 epochs of batch 32, hidden 512, RAdam 5e-5, learning after 32 updates). pymarl2: QMIX on the stag hunt
(predator_prey_p0) at the PyMARL2 profile (8 episodes per update, one gradient step on 128 episodes).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import jax

from experiments.common import make_cfg
from jaxfactor import config as config_lib
from jaxfactor.runner.anakin import chunk_for
from jaxfactor.runner.lanes import build, init_lanes
from jaxfactor.runner.learn import over_lanes

PEERS = {
    "jaxmarl": ("experiment=jaxmarl_qmix_smax_3m",),
    "pymarl2": ("algo=qmix", "env=predator_prey_p0", "algo.buffer_size=512"),
}


def gib(tree) -> float:
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)) / 2**30


def timed_chunk(cfg, algo, env, runner, updates: int):
    """(runner, metrics, compile s, run s) of one chunk of `updates` updates."""
    fn = jax.jit(over_lanes(chunk_for(cfg, algo, env, updates, budget=False)), donate_argnums=0)
    t0 = time.perf_counter()
    compiled = fn.lower(runner).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    runner, metrics = compiled(runner)
    jax.block_until_ready(metrics)
    return runner, jax.device_get(metrics), compile_s, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", choices=sorted(PEERS), default="jaxmarl")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--learning-updates", type=int, default=8, help="timed updates that all learn")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides, e.g. algo.epochs=1")
    args = parser.parse_args()
    cfg = make_cfg(*PEERS[args.peer], f"num_seeds={args.seeds}", *args.extra)
    env, algo, _ = build(cfg)
    a, rows = cfg.algo, config_lib.segment_length(cfg)
    runner = init_lanes(cfg, algo)
    state_gib = gib(runner)
    # Updates before the first that learns: the replay must hold a batch and the learning_starts steps be collected.
    per_update = a.num_envs * (rows or env.spec.episode_limit)
    fill = max(-(-a.batch_size // a.num_envs), -(-a.learning_starts // per_update) if rows else 0)
    runner, warm, _, warm_s = timed_chunk(cfg, algo, env, runner, fill)
    steps_before = float(jax.device_get(runner.learner.t_env).sum())
    runner, metrics, compile_s, run_s = timed_chunk(cfg, algo, env, runner, args.learning_updates)
    assert metrics["train/learning"].min() == 1.0, "every timed update must learn"
    steps = float(jax.device_get(runner.learner.t_env).sum()) - steps_before
    gradient_steps = args.seeds * args.learning_updates * a.epochs
    slots = (rows + 1) if rows else env.spec.episode_limit + 1
    # Real transitions per sampled batch: segments are all real; episodes are counted from the stored mask.
    if rows:
        real = a.batch_size * rows
    else:
        mask = jax.device_get(runner.buffer.data.filled[..., 1:]).sum(-1)  # [lanes, capacity]
        real = a.batch_size * float(mask[mask > 0].mean())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {
        "peer": args.peer,
        "overrides": [*PEERS[args.peer], *args.extra],
        "seeds": args.seeds,
        "warm_updates": fill,
        "warm_env_steps_per_s": round(fill * per_update * args.seeds / warm_s),
        "learning_updates": args.learning_updates,
        "env_steps_per_s_learning": round(steps / run_s, 1),
        "s_per_gradient_step": round(run_s / gradient_steps, 4),
        "us_per_real_transition_learned": round(1e6 * run_s / (gradient_steps * real), 2),
        "slots_per_row": slots,
        "chunk_compile_s": round(compile_s, 1),
        "state_gib": round(state_gib, 3),
        "peak_rss_gib": round(peak, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
