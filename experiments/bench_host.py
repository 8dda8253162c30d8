"""Host-simulator benchmark (issue 16): per host env, raw simulator steps/s in one process and through a pool
of every worker, training env-steps/s of QMIX through the host backend, and the collector's overhead over
the simulator (seconds spent acting over seconds spent in simulator requests, IPC included).

    python -m experiments.bench_host [--envs highway_intersection sc2_3m sc2_MMM2 grf_academy_3_vs_1_with_keeper]
                                     [--workers N] [--seconds 20] [--updates 3]

Fake simulators (sc2_*, grf_*: env.simulator=fake) measure the loop, not StarCraft or football.
Writes experiments/results/bench_host.md.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from experiments.common import make_cfg, save_table
from jaxfactor.runner.workers import Failure, InlinePool, PoolSettings, ProcessPool

FAKE = ("sc2_", "smacv2_", "grf_")


def overrides(env_name: str) -> list[str]:
    return [f"env={env_name}"] + (["env.simulator=fake"] if env_name.startswith(FAKE) else [])


def random_steps(pool, spec, num_envs: int, seconds: float, seed: int = 0) -> tuple[int, float]:
    """Episodes with uniformly random available actions in every env of the pool, for about `seconds`:
    (steps, wall seconds)."""
    rng = np.random.default_rng(seed)
    steps, t0, episode = 0, time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        seen = pool.reset(np.arange(num_envs) + 1000 * episode, np.zeros(num_envs, int))
        running = {i: r for i, r in seen.items() if not isinstance(r, Failure)}
        for _ in range(spec.episode_limit):
            if not running:
                break
            actions = {i: np.array([rng.choice(np.flatnonzero(a)) for a in r["avail"]]) for i, r in running.items()}
            out = pool.step(actions)
            steps += len(actions)
            running = {
                i: r
                for i, r in out.items()
                if not isinstance(r, Failure) and not (r["terminal"] or r["truncated"] or r["invalid"])
            }
        episode += 1
    return steps, time.perf_counter() - t0


def bench(env_name: str, workers: int, seconds: float, updates: int) -> dict:
    from jaxfactor.runner.host import HostBackend
    from jaxfactor.runner.lanes import init_lanes, setup

    cfg = make_cfg(
        "algo=qmix",
        *overrides(env_name),
        "num_seeds=1",
        f"algo.num_envs={workers}",
        "algo.batch_size=4",
        "algo.buffer_size=64",
    )
    s = setup(cfg)
    factory, spec = s.env, s.env.spec
    with InlinePool(factory, 1) as pool:
        one, one_s = random_steps(pool, spec, 1, seconds)
    with ProcessPool(factory, workers, workers, PoolSettings()) as pool:
        many, many_s = random_steps(pool, spec, workers, seconds)
        backend = HostBackend(s, pool=pool)
        runner = init_lanes(cfg, s.algo)
        backend.compile(runner)
        runner, _ = backend.update(runner)  # acting compiles here; not timed
        t_before = int(np.asarray(runner.learner.t_env).sum())
        collector = backend.collector
        collector.act_s = collector.step_s = backend.learn_s = 0.0
        t0 = time.perf_counter()
        for _ in range(updates):
            runner, _ = backend.update(runner)
        train_s = time.perf_counter() - t0
        trained = int(np.asarray(runner.learner.t_env).sum()) - t_before
    collect_s = collector.act_s + collector.step_s
    return {
        "env": env_name,
        "workers": workers,
        "sim steps/s (1 process)": f"{one / one_s:.0f}",
        f"sim steps/s ({workers} workers)": f"{many / many_s:.0f}",
        "train env-steps/s": f"{trained / train_s:.0f}",
        "collect env-steps/s": f"{trained / collect_s:.0f}",
        "loop overhead (acting / simulator time)": f"{collector.act_s / collector.step_s:.0%}",
        "learn s/update": f"{backend.learn_s / updates:.2f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--envs", nargs="+", default=["highway_intersection", "sc2_3m", "sc2_MMM2", "grf_academy_3_vs_1_with_keeper"]
    )
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--updates", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for env_name in args.envs:
        rows.append(bench(env_name, args.workers, args.seconds, args.updates))
        print(rows[-1], flush=True)
    header = list(rows[0])
    lines = [
        f"Host simulators: {args.workers} workers, QMIX (num_envs = workers, 1 seed), {args.seconds:g} s of "
        f"random stepping, {args.updates} timed updates",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(str(r[k]) for k in header) + " |" for r in rows]
    save_table("bench_host", "\n".join(lines))


if __name__ == "__main__":
    main()
