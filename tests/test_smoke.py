"""Every registered algorithm trains a tiny budget with finite losses (the recurrent, partially
observable smax_3m for the QMIX baseline and the issue-6 algorithms, a matrix game for the rest to
keep CI within budget); the README's S2Q command runs end to end through the CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jaxfactor.algos import ALGOS
from jaxfactor.train import run


ON_SMAX = ("qmix", "nmix", "me_qmix", "me_qplex")


@pytest.mark.parametrize("algo", ALGOS.names())
def test_tiny_budget_finite_losses(cfg_factory, tmp_path, algo):
    small = ["algo.batch_size=8", "algo.buffer_size=32", "algo.num_envs=4", "num_seeds=2",
             "algo.target_update_episodes=8"]
    budget = ["env=smax_3m", "env.max_steps=40", "total_timesteps=480", "log_every_steps=160"] if algo in ON_SMAX \
        else ["env=matrix_m3", "total_timesteps=400", "log_every_steps=200"]
    result = run(cfg_factory(f"algo={algo}", *small, *budget))
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    losses = [v for line in metrics for v in json.loads(line)["per_seed"]["train/main/loss"]]
    learned = [v for v in losses if v == v]  # NaN before learning starts (buffer < batch)
    assert learned and np.isfinite(learned).all()
    assert result["num_seeds"] == 2 and len(result["final"]["eval_return"]) == 2
    assert np.isfinite(result["final"]["eval_return"]).all()


def test_s2q_on_6h_vs_8z_through_the_cli(tmp_path):
    """The headline command of the README, with a tiny budget."""
    cmd = [sys.executable, "-m", "jaxfactor.train", "algo=s2q", "env=smax_6h_vs_8z", "num_seeds=1",
           "total_timesteps=300", "log_every_steps=150", "algo.batch_size=2", "algo.buffer_size=4",
           "algo.num_envs=2", "env.test_episodes=2", f"run_dir={tmp_path}/run", "progress=false"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["algo"] == "s2q" and summary["env"] == "smax_6h_vs_8z" and summary["env_steps"] >= 300
    assert "greedy eval win rate" in done.stdout
