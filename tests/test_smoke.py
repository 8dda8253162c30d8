"""Every registered algorithm x {smax_3m, a matrix game} trains a tiny budget with finite losses."""

import numpy as np
import pytest

from jaxfactor.algos import ALGOS
from jaxfactor.train import run


@pytest.mark.parametrize("env", ["smax_3m", "matrix_m3"])
@pytest.mark.parametrize("algo", ALGOS.names())
def test_tiny_budget_finite_losses(cfg_factory, tmp_path, algo, env):
    small = ["algo.batch_size=8", "algo.buffer_size=32", "algo.num_envs=4", "num_seeds=2", "algo.target_update_episodes=8"]
    budget = ["total_timesteps=1200", "log_every_steps=400"] if env.startswith("smax") else \
        ["total_timesteps=400", "log_every_steps=200"]
    result = run(cfg_factory(f"algo={algo}", f"env={env}", *small, *budget))
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    import json

    losses = [v for line in metrics for v in json.loads(line)["per_seed"]["train/main/loss"]]
    learned = [v for v in losses if v == v]  # NaN before learning starts (buffer < batch)
    assert learned and np.isfinite(learned).all()
    assert result["num_seeds"] == 2 and len(result["final"]["eval_return"]) == 2
    assert np.isfinite(result["final"]["eval_return"]).all()
