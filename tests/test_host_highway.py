"""highway-env's intersection for real (issue 16): the contract (shapes, dtypes, team reward, a crash is
terminal, the time limit truncates, the arrival bonus is paid once), reset(seed) determinism, QMIX learning
with 2 workers, and a run SIGKILLed after a checkpoint resumes to the uninterrupted run's metrics."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from conftest import killed_run_script, make_cfg

from jaxfactor.hostenvs import make_host_env
from jaxfactor.hostenvs.protocol import check_timestep

pytest.importorskip("highway_env")


def play(env, seed: int, policy) -> list[dict]:
    steps = [env.reset(seed, 0)]
    while not (steps[-1].get("terminal") or steps[-1].get("truncated")):
        steps.append(env.step(policy(len(steps) - 1)))
    return steps


@pytest.fixture(scope="module")
def intersection():
    factory = make_host_env("highway_intersection", {})
    env = factory.make(0)
    yield factory.spec, env
    env.close()


def test_the_intersection_keeps_the_contract_and_pays_the_team(intersection):
    spec, env = intersection
    assert (spec.num_agents, spec.obs_dim, spec.state_dim, spec.num_actions, spec.episode_limit) == (4, 32, 48, 3, 100)
    fast = play(env, 6, lambda t: np.full(4, 2))  # everybody speeds into the junction: a crash
    for i, ts in enumerate(fast):
        check_timestep(spec, ts, stepped=i > 0)
    assert fast[-1]["terminal"] and not fast[-1]["truncated"] and not fast[-1]["won"]
    assert fast[-1]["reward"] == -100.0 and all(ts["reward"] == -1.0 for ts in fast[1:-1])
    slow = play(env, 5, lambda t: np.zeros(4, np.int64))  # everybody brakes to a halt: the time limit
    assert len(slow) == 101 and slow[-1]["truncated"] and not slow[-1]["terminal"]
    assert sum(ts["reward"] for ts in slow[1:]) == -100.0


def test_the_arrival_bonus_is_paid_once_when_the_last_vehicle_arrives(intersection):
    spec, env = intersection
    idle = play(env, 3, lambda t: np.ones(4, np.int64))
    rewards = [ts["reward"] for ts in idle[1:]]
    assert idle[-1]["won"] and idle[-1]["terminal"] and env.arrived.all()
    assert rewards[-1] == 99.0 and rewards[:-1] == [-1.0] * (len(rewards) - 1)


def test_reset_with_a_seed_is_deterministic_and_seeds_differ(intersection):
    spec, env = intersection
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 3, (100, 4))
    a, b = play(env, 11, lambda t: actions[t]), play(env, 11, lambda t: actions[t])
    assert len(a) == len(b) and all(np.array_equal(x[k], y[k]) for x, y in zip(a, b) for k in ("obs", "state"))
    assert not np.array_equal(env.reset(11, 0)["obs"], env.reset(12, 0)["obs"])
    frame = env.render()
    assert frame.shape == (600, 600, 3) and frame.dtype == np.uint8 and frame.max() > 0


def test_bad_intersection_settings_are_one_line_errors():
    from jaxfactor.errors import ConfigError

    for params, field in (
        ({"controlled_vehicles": 5}, "env.controlled_vehicles=5 is out of range"),
        ({"traffic": "yes"}, "env.traffic"),
        ({"duration": 0}, "env.duration"),
        ({"lanes": 2}, "env.lanes is not a key"),
    ):
        with pytest.raises(ConfigError, match=field):
            make_host_env("highway_intersection", params)


SHORT = (
    "algo=qmix",
    "env=highway_intersection",
    "env.duration=6",
    "num_seeds=1",
    "algo.num_envs=2",
    "algo.batch_size=2",
    "algo.buffer_size=8",
    "algo.agent_hidden_dim=16",
    "algo.mixing_embed_dim=8",
    "algo.hypernet_embed_dim=16",
    "total_timesteps=160",
    "log_every_steps=40",
    "checkpoint.every_steps=80",
    "env.test_episodes=2",
    "host.workers=2",
    "algo.length_buckets=1",
    "progress=false",
)

KILLED_RUN = killed_run_script(2)


def per_seed(run_dir) -> list[dict]:
    return [json.loads(line)["per_seed"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_qmix_learns_on_the_intersection_and_a_killed_run_resumes_to_the_uninterrupted_one(tmp_path):
    from jaxfactor.runner.loop import run

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = run(make_cfg(*SHORT, run_dir=str(whole)))
    lines = per_seed(whole)
    learned = [x for line in lines for x in line["train/main/loss"] if x == x]
    assert learned and np.isfinite(learned).all() and reference["host"]["workers"] == 2
    assert reference["host"]["crashes"] == 0 and reference["chunks"] >= 4

    from jaxfactor.evaluate import evaluate  # greedy episodes in workers, and a GIF from highway-env's own frames

    out = evaluate(str(whole), episodes=3, render=True, gif=str(tmp_path / "crossing.gif"))
    assert len(out["return"]) == 1 and 0.0 <= out["win_rate"][0] <= 1.0
    from PIL import Image

    with Image.open(tmp_path / "crossing.gif") as gif:
        assert gif.size == (600, 600) and gif.n_frames >= 2

    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, *SHORT, f"run_dir={killed}"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    assert not (killed / "summary.json").exists()
    out = subprocess.run(
        [sys.executable, "-m", "jaxfactor.train", f"resume={killed}", "progress=false"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0 and "at chunk 2" in out.stdout, out.stderr[-2000:]
    resumed = json.loads((killed / "summary.json").read_text())
    assert resumed["final"] == reference["final"] and per_seed(killed) == lines
