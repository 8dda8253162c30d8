"""Every registered algorithm collects and learns with finite losses (parametrised over the registry: a new
algorithm is smoke-tested by registering it); the README's S2Q command runs end to end through the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import COMPILE_FAST_XLA_FLAGS, make_cfg

from jaxfactor.algos import ALGOS
from jaxfactor.runner.lanes import build
from jaxfactor.runner.rollout import rollout

FAST_COMPILE = {"xla_backend_optimization_level": 0}  # these programs are tiny: compiling them is the whole cost
CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "algo"


def shipped(name: str) -> bool:
    """Registered by the package (test modules register their own examples, which have no yaml file)."""
    factory = ALGOS.get(name)
    return getattr(factory, "func", factory).__module__.startswith("jaxfactor.")


SHIPPED = [name for name in ALGOS.names() if shipped(name)]


def test_every_shipped_algorithm_has_its_config_and_every_config_its_algorithm():
    assert SHIPPED == sorted(p.stem for p in CONFIGS.glob("[!_]*.yaml"))


@pytest.mark.parametrize("algo", SHIPPED)
def test_every_registered_algorithm_collects_and_learns(algo):
    """Every registered algorithm, in one compiled program: 8 episodes with its behaviour policy, then its
    `update` on them (every stage), three times. Losses stay finite and every stage moves its parameters. The loop
    around act and update is the same for all algorithms and is trained elsewhere in the suite."""
    cfg = make_cfg(f"algo={algo}", "env=matrix_m3", "algo.batch_size=8", "algo.num_envs=8")
    env, algo_, _ = build(cfg)
    learner = algo_.init(jax.random.key(0))

    def collect_and_learn(learner, key):
        k_collect, k_learn = jax.random.split(key)
        batch, _ = rollout(algo_, env, algo_.behaviour(learner), k_collect, 8, greedy=False)
        return algo_.update(learner, batch, k_learn)

    step = jax.jit(collect_and_learn).lower(learner, jax.random.key(1)).compile(FAST_COMPILE)
    trained = learner
    for i in range(3):
        trained, metrics = step(trained, jax.random.key(i))
        losses = {k: float(v) for k, v in metrics.items() if k.endswith("loss")}
        assert losses and all(np.isfinite(v) for v in losses.values()), losses
    for stage in algo_.stages:
        moved = [
            g
            for g in stage.owns
            if any(
                not np.array_equal(a, b)
                for a, b in zip(jax.tree.leaves(learner.params[g]), jax.tree.leaves(trained.params[g]))
            )
        ]
        assert moved, f"stage {stage.name} of {algo} changed none of {stage.owns}"


@pytest.mark.slow
@pytest.mark.extended  # 130 s in CI; the CLI path itself is exercised by test_reliability and test_tooling
def test_s2q_on_6h_vs_8z_through_the_cli(tmp_path):
    """The headline command of the README, with a tiny budget."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": COMPILE_FAST_XLA_FLAGS}  # compile-bound, see conftest
    cmd = [
        sys.executable,
        "-m",
        "jaxfactor.train",
        "algo=s2q",
        "env=smax_6h_vs_8z",
        "num_seeds=1",
        "total_timesteps=300",
        "log_every_steps=150",
        "algo.batch_size=2",
        "algo.buffer_size=4",
        "algo.num_envs=2",
        "env.test_episodes=2",
        f"run_dir={tmp_path}/run",
        "progress=false",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["algo"] == "s2q" and summary["env"] == "smax_6h_vs_8z" and summary["env_steps"] >= 300
    assert "greedy eval win rate" in done.stdout

    # The run's final checkpoint: greedy evaluation and a GIF through jaxfactor.evaluate.
    gif = tmp_path / "episode.gif"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxfactor.evaluate",
            f"run_dir={tmp_path}/run",
            "episodes=2",
            "render=true",
            f"gif={gif}",
            "max_render_steps=4",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seed 0: return" in done.stdout and "win rate" in done.stdout
    from PIL import Image

    with Image.open(gif) as image:
        assert image.n_frames == 4 and image.size[0] > 100
