"""End-to-end through `train.run`: determinism, seeds, compile-once, and matrix-game regressions
(ALGORITHMS.md §11.1 W2: an additive mixer under uniform data misses the optimum of M1)."""

import json
import re

import jax
import numpy as np
import pytest
from conftest import TraceCounter, make_cfg

from jaxfactor.runner.lanes import lane_label
from jaxfactor.runner.loop import run
from jaxfactor.runner.report import nonfinite_losses


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_same_seed_identical_metrics_and_one_trace(cfg_factory, tmp_path):
    overrides = (
        "algo=qmix",
        "env=matrix_m1",
        "num_seeds=4",
        "total_timesteps=3000",
        "log_every_steps=1000",
        "algo.batch_size=32",
        "algo.eps_anneal_steps=2000",
    )
    counter = TraceCounter()
    first = run(cfg_factory(*overrides), callbacks=[counter])
    assert first["chunks"] >= 3
    assert counter.traces == 1, f"chunk traced {counter.traces} times for {first['chunks']} chunks"
    lines_1 = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    second = run(make_cfg(*overrides, run_dir=str(tmp_path / "again")))  # a fresh run_dir: no checkpoints there
    lines_2 = (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()
    strip = lambda ls: [{k: v for k, v in json.loads(x).items() if not k.startswith("perf")} for x in ls]  # noqa
    assert strip(lines_1) == strip(lines_2)
    assert first["matrix"]["q_tot"] == second["matrix"]["q_tot"]
    assert first["final"] == second["final"]


def test_different_seeds_give_different_parameters(cfg_factory):
    from jaxfactor.runner.lanes import build, init_lanes

    cfg = cfg_factory("algo=qmix", "env=matrix_m1", "num_seeds=3")
    _, algo, _ = build(cfg)
    runner = init_lanes(cfg, algo)
    for leaf in jax.tree.leaves(runner.learner.params):
        assert not np.array_equal(leaf[0], leaf[1]) and not np.array_equal(leaf[1], leaf[2])
    other = init_lanes(cfg_factory("algo=qmix", "env=matrix_m1", "num_seeds=3", "seed=1"), algo)
    assert not leaves_equal(runner.learner.params, other.learner.params)  # the base seed matters too


@pytest.mark.timeout(180)
def test_vmapped_init_of_several_seeds_does_not_hang(cfg_factory):
    """jaxlib 0.10.2 deadlocks in batched QR on 2-core CPUs; our init must stay QR-free under vmap."""
    from jaxfactor.runner.lanes import build
    from jaxfactor.runner.learn import init_lane

    cfg = cfg_factory("algo=qmix", "env=smax_3m", "algo.agent_hidden_dim=512", "algo.hypernet_embed_dim=512")
    env, algo, _ = build(cfg)
    runner = jax.jit(jax.vmap(lambda k: init_lane(algo, 4, k)))(jax.random.split(jax.random.key(0), 4))
    jax.block_until_ready(runner)
    jaxpr = jax.make_jaxpr(jax.vmap(algo.init_params))(jax.random.split(jax.random.key(0), 4))
    primitives = set(re.findall(r"= ([a-z_]+)\[?", str(jaxpr)))
    assert not primitives & {"qr", "geqrf", "householder_product", "orgqr"}, primitives


UNIFORM = ("algo.eps_start=1", "algo.eps_finish=1")
UPDATES = 10_000 // 8  # a fifth of the PyMARL2 matrix-game budget (50k env steps): the additive miss holds by then


@pytest.mark.slow
def test_vdn_misses_the_m1_optimum_under_uniform_data():
    """§11.1 W2 for VDN, 5 seeds in one vmapped program: the additive fit misses (A,A) on M1 (QMIX's
    version, with M0 as the solvable control, is in test_weighted_matrix.py)."""
    from conftest import make_cfg

    from experiments.matrix_tables import train_matrix_games

    cfg = make_cfg("algo=vdn", "env=matrix_m1", *UNIFORM)
    out = train_matrix_games(cfg, [cfg.env.params["payoff"]], 5, UPDATES)
    q_tot, greedy = out["q_tot"][0], out["greedy"][0]  # [5, 3, 3], [5, 2]
    assert (greedy == 0).all(axis=1).sum() <= 1, f"VDN found (A,A) on {(greedy == 0).all(axis=1).sum()} of 5 seeds"
    assert (q_tot[:, 0, 0] < 0.0).sum() >= 4, q_tot[:, 0, 0]
    # VDN is additive: Q_tot(A,A) - Q_tot(A,B) == Q_tot(B,A) - Q_tot(B,B)
    np.testing.assert_allclose(q_tot[:, 0, 0] - q_tot[:, 0, 1], q_tot[:, 1, 0] - q_tot[:, 1, 1], atol=1e-4)


def test_run_reports_matrix_tables(cfg_factory):
    """The CLI path writes the learned tables and a greedy evaluation into summary.json."""
    result = run(
        cfg_factory(
            "algo=qmix", "env=matrix_m0", "num_seeds=2", "total_timesteps=8000", "log_every_steps=4000", *UNIFORM
        )
    )
    q_tot = np.asarray(result["matrix"]["q_tot"])
    assert q_tot.shape == (2, 3, 3) and np.asarray(result["matrix"]["utilities"]).shape == (2, 2, 3)
    greedy = np.asarray(result["matrix"]["greedy_joint_action"])
    payoff = np.asarray(result["matrix"]["payoff"])
    np.testing.assert_allclose(result["final"]["eval_return"], [payoff[tuple(g)] for g in greedy])


def test_nonfinite_losses_names_the_lanes_that_diverged_after_learning_started():
    """NaN before the first update is the runner's placeholder; NaN or inf on an update that learned is a
    divergence, reported per lane with the loss names (train.run prints it and records `diverged_lanes`)."""
    nan, inf = np.nan, np.inf
    metrics = {
        "train/learning": np.array([[0, 1, 1], [0, 1, 1], [0, 0, 1]], np.float32),
        "train/main/loss": np.array([[nan, 0.5, 0.4], [nan, 0.5, nan], [nan, nan, 0.3]]),
        "train/temperature/loss": np.array([[nan, 0.1, inf], [nan, 0.1, 0.1], [nan, nan, 0.2]]),
        "train/main/grad_norm": np.array([[nan, inf, 1.0], [nan, 1.0, 1.0], [nan, nan, 1.0]]),
    }
    assert nonfinite_losses(metrics) == {0: ["train/temperature/loss"], 1: ["train/main/loss"]}
    # Lanes are grid-major: lane 3 of 2 seeds x 2 learning rates is seed 1 of the second grid point.
    assert lane_label(make_cfg("num_seeds=2", "seed=5"), 1) == "seed 6"
    assert lane_label(make_cfg("num_seeds=2", "sweep.algo.lr=[0.001,0.0001]"), 3) == "seed 1, grid point lr=0.0001"


def test_matrix_tables_shift_each_game_to_its_own_table():
    """`train_matrix_games(..., payoffs_after, shift_at)` pays game g by payoffs_after[g] from shift_at on (the
    shift studies of experiments/shift_games.py): after the shift, with the old episodes evicted, each game's
    learned Q_tot fits its own new table, and the tables before the shift fit the old ones."""
    from conftest import make_cfg

    from experiments.matrix_tables import train_matrix_games

    cfg = make_cfg("algo=qmix", "env=matrix_m0", "algo.buffer_size=256", "algo.lr=0.005", *UNIFORM)
    before = [[[0, 0], [0, 0]], [[2, 2], [2, 2]]]
    after = [[[4, 4], [4, 4]], [[-3, -3], [-3, -3]]]
    out = train_matrix_games(cfg, before, 2, 300, points=2, payoffs_after=after, shift_at=1200)
    assert out["env_steps"][0, 0, 0] == 1200 and out["env_steps"][0, 0, 1] == 2400
    q_tot = out["q_tot"]  # [G, S, P, 2, 2]
    np.testing.assert_allclose(q_tot[:, :, 0], np.broadcast_to(np.asarray(before)[:, None], (2, 2, 2, 2)), atol=0.5)
    np.testing.assert_allclose(q_tot[:, :, 1], np.broadcast_to(np.asarray(after)[:, None], (2, 2, 2, 2)), atol=0.5)
