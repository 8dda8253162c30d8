"""Peak resident memory of `jaxfactor.evaluate` and of a resume, on a predator-prey run saved with its full
replay buffers (issue 15: restoring should not hold the replay memory several times over).

    python -m experiments.bench_restore_memory [--buffer-size 1000] [--seeds 2]

Trains one chunk (QMIX, predator_prey_p0), then runs `evaluate` and `resume` (one more chunk) as child
processes and reads each one's peak RSS from the kernel (getrusage of the waited child). Prints a markdown
table and saves it to experiments/results/bench_restore_memory.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.common import save_table

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def peak_rss_gib(args: list[str]) -> tuple[float, float]:
    """(peak RSS in GiB, wall seconds) of one child process; raises with its stderr if it fails."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([sys.executable, "-m", *args], env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)  # already reaped: tell Popen
        if child.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(args[:2])} exited {child.returncode}: {err.read()[-2000:]}")
    return usage.ru_maxrss / 2**20, time.perf_counter() - t0  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buffer-size", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    steps_per_chunk = 8 * 200  # 8 envs x 200-step episodes: one update per chunk
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        base = [
            "jaxfactor.train",
            "algo=qmix",
            "env=predator_prey_p0",
            f"num_seeds={args.seeds}",
            f"algo.buffer_size={args.buffer_size}",
            f"log_every_steps={steps_per_chunk}",
            "progress=false",
            "env.test_episodes=2",
        ]
        train_rss, train_s = peak_rss_gib([*base, f"total_timesteps={steps_per_chunk}", f"run_dir={run_dir}"])
        if not (run_dir / "summary.json").exists():
            raise SystemExit("the training run did not finish")
        eval_rss, eval_s = peak_rss_gib(["jaxfactor.evaluate", f"run_dir={run_dir}", "episodes=2"])
        resume_rss, resume_s = peak_rss_gib(
            ["jaxfactor.train", f"resume={run_dir}", f"total_timesteps={2 * steps_per_chunk}"]
        )
    from jaxfactor import buffers
    from jaxfactor.structs import EnvSpec

    spec = EnvSpec(num_agents=8, obs_dim=75, state_dim=300, num_actions=6, episode_limit=200, has_win_flag=False)
    replay = buffers.estimate_bytes(spec, args.buffer_size) * args.seeds / 2**30
    rows = [
        ("train (1 chunk)", train_rss, train_s),
        ("evaluate", eval_rss, eval_s),
        ("resume (+1 chunk)", resume_rss, resume_s),
    ]
    table = "\n".join(
        [
            f"QMIX on predator_prey_p0, {args.seeds} seeds x {args.buffer_size} episodes: {replay:.2f} GiB of replay",
            "",
            "| process | peak RSS (GiB) | x replay | wall (s) |",
            "|---|---|---|---|",
            *[f"| {name} | {rss:.2f} | {rss / replay:.1f} | {wall:.0f} |" for name, rss, wall in rows],
        ]
    )
    save_table("bench_restore_memory", table)


if __name__ == "__main__":
    main()
