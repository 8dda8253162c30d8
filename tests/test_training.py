"""End-to-end through `train.run`: determinism, seeds, compile-once, and matrix-game regressions
(ALGORITHMS.md §11.1 W2 / P1': a monotone mixer under uniform data misses the optimum of M1)."""

import json
import re

import jax
import numpy as np
import pytest
from conftest import make_cfg

from jaxfactor.train import run


def leaves_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_same_seed_identical_metrics_and_one_trace(cfg_factory, tmp_path):
    overrides = ("algo=qmix", "env=matrix_m1", "num_seeds=4", "total_timesteps=3000", "log_every_steps=1000",
                 "algo.batch_size=32", "algo.eps_anneal_steps=2000")
    traces: list = []
    first = run(cfg_factory(*overrides), trace_counter=traces)
    assert first["chunks"] >= 3
    assert len(traces) == 1, f"chunk traced {len(traces)} times for {first['chunks']} chunks"
    lines_1 = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    second = run(make_cfg(*overrides, run_dir=str(tmp_path / "again")))  # a fresh run_dir: no checkpoints there
    lines_2 = (tmp_path / "again" / "metrics.jsonl").read_text().splitlines()
    strip = lambda ls: [{k: v for k, v in json.loads(x).items() if not k.startswith("perf")} for x in ls]  # noqa
    assert strip(lines_1) == strip(lines_2)
    assert first["matrix"]["q_tot"] == second["matrix"]["q_tot"]
    assert first["final"] == second["final"]


def test_different_seeds_give_different_parameters(cfg_factory):
    from jaxfactor.runner.anakin import init_runner
    from jaxfactor.train import build

    cfg = cfg_factory("algo=qmix", "env=matrix_m1", "num_seeds=3")
    env, algo, _ = build(cfg)
    keys = jax.random.split(jax.random.key(cfg.seed), 3)
    runner = jax.jit(jax.vmap(lambda k: init_runner(algo, env, 16, k)))(keys)
    for leaf in jax.tree.leaves(runner.learner.params):
        assert not np.array_equal(leaf[0], leaf[1]) and not np.array_equal(leaf[1], leaf[2])
    other = jax.jit(jax.vmap(lambda k: init_runner(algo, env, 16, k)))(jax.random.split(jax.random.key(1), 3))
    assert not leaves_equal(runner.learner.params, other.learner.params)  # the base seed matters too


@pytest.mark.timeout(180)
def test_vmapped_init_of_several_seeds_does_not_hang(cfg_factory):
    """jaxlib 0.10.2 deadlocks in batched QR on 2-core CPUs; our init must stay QR-free under vmap."""
    from jaxfactor.runner.anakin import init_runner
    from jaxfactor.train import build

    cfg = cfg_factory("algo=qmix", "env=smax_3m", "algo.agent_hidden_dim=512", "algo.hypernet_embed_dim=512")
    env, algo, _ = build(cfg)
    runner = jax.jit(jax.vmap(lambda k: init_runner(algo, env, 4, k)))(jax.random.split(jax.random.key(0), 4))
    jax.block_until_ready(runner)
    jaxpr = jax.make_jaxpr(jax.vmap(algo.init_params))(jax.random.split(jax.random.key(0), 4))
    primitives = set(re.findall(r"= ([a-z_]+)\[?", str(jaxpr)))
    assert not primitives & {"qr", "geqrf", "householder_product", "orgqr"}, primitives


UNIFORM = ("algo.eps_start=1", "algo.eps_finish=1")
M0 = [[12, -0.1, -0.1], [-0.1, 0, 0], [-0.1, 0, 0]]
M1 = [[8, -12, -12], [-12, 0, 0], [-12, 0, 0]]
UPDATES = 25_000 // 8  # half the PyMARL2 matrix-game budget (50k env steps) to keep CI within budget


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["qmix", "vdn"])
def test_monotone_factorisations_on_m1_and_m0_under_uniform_data(algo):
    """M1 and M0 (5 seeds each) in one vmapped program. §11.1 W2: on M1 a monotone mixer misses (A,A);
    QMIX recovers M0's optimum (A,A) with Q_tot(A,A) ~ 12."""
    from conftest import make_cfg

    from jaxfactor.matrix_study import train_matrix_games

    games = [M1, M0] if algo == "qmix" else [M1]  # lanes cost compute: VDN only needs M1
    out = train_matrix_games(make_cfg(f"algo={algo}", "env=matrix_m1", *UNIFORM), games, 5, UPDATES)
    q_tot, greedy = out["q_tot"][0], out["greedy"][0]  # M1: [5, 3, 3], [5, 2]
    at_optimum = (greedy == 0).all(axis=1)
    # on most seeds the greedy joint action lies in {B,C}^2 and Q_tot(A,A) is far below 8
    assert at_optimum.sum() <= 1, f"{algo} found (A,A) on {at_optimum.sum()} of 5 seeds"
    assert (q_tot[:, 0, 0] < 0.0).sum() >= 4, q_tot[:, 0, 0]
    if algo == "qmix":  # the gradient-trained monotone fit: about -8 on row/column A, about 0 on {B,C}^2
        assert np.median(np.abs(q_tot[:, 1:, 1:])) < 0.5 and np.median(q_tot[:, 0, :]) < -6
        assert (out["greedy"][1] == 0).all()  # M0: (A,A) on every seed
        np.testing.assert_allclose(out["q_tot"][1][:, 0, 0], 12.0, atol=0.5)
    else:  # VDN is additive: Q_tot(A,A) - Q_tot(A,B) == Q_tot(B,A) - Q_tot(B,B)
        np.testing.assert_allclose(q_tot[:, 0, 0] - q_tot[:, 0, 1], q_tot[:, 1, 0] - q_tot[:, 1, 1], atol=1e-4)


def test_run_reports_matrix_tables(cfg_factory):
    """The CLI path writes the learned tables and a greedy evaluation into summary.json."""
    result = run(cfg_factory("algo=qmix", "env=matrix_m0", "num_seeds=2", "total_timesteps=8000",
                             "log_every_steps=4000", *UNIFORM))
    q_tot = np.asarray(result["matrix"]["q_tot"])
    assert q_tot.shape == (2, 3, 3) and np.asarray(result["matrix"]["utilities"]).shape == (2, 2, 3)
    greedy = np.asarray(result["matrix"]["greedy_joint_action"])
    payoff = np.asarray(result["matrix"]["payoff"])
    np.testing.assert_allclose(result["final"]["eval_return"], [payoff[tuple(g)] for g in greedy])
