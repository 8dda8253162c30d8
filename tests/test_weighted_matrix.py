"""POW's matrix game M3 under uniform data (ALGORITHMS.md §11.1 P1 / P1'), 5 seeds in one vmapped run.

25k env steps per seed (the paper runs 50k; every seed has converged by 25k, see experiments/README.md)
to keep CI within budget; CW-QMIX, OW-QMIX, M1, a moved optimum and three agents are covered by
`python -m experiments.matrix_weighted`.
"""

import numpy as np
import pytest
from conftest import make_cfg

from jaxfactor.matrix_study import train_matrix_games

M3 = [[8, -12, -12], [-12, 0, 0], [-12, 0, 7.9]]
UNIFORM = ("env=matrix_m3", "algo.eps_start=1", "algo.eps_finish=1")
UPDATES = 25_000 // 8
# POW meets every criterion below on 5/5 seeds from 5k env steps on and through 25k (measured every 2.5k):
# 10k steps keep the margin at a third of the CPU time.
POW_UPDATES = 10_000 // 8


@pytest.mark.slow
def test_pow_qmix_recovers_the_m3_optimum_and_the_payoff_table():
    cfg = make_cfg("algo=pow_qmix", *UNIFORM, "algo.pow_tolerance=0.05", "algo.pow_warmup_steps=0")
    out = train_matrix_games(cfg, [M3], seeds_per_game=5, updates=POW_UPDATES)
    assert (out["greedy"][0] == 0).all(), out["greedy"][0]  # (A,A) on every seed
    np.testing.assert_allclose(out["q_tot"][0][:, 0, 0], 8.0, atol=0.5)
    np.testing.assert_allclose(out["q_r"][0], np.broadcast_to(M3, (5, 3, 3)), atol=0.5)  # Q_r ~ M3 on all 9 cells
    # at the end only (A,A) is in the potentially optimal set (strict tolerance 0.05)
    in_set = np.abs(out["q_r"][0] - out["v_r"][0][:, None, None]) < 0.05
    assert in_set[:, 0, 0].all() and in_set.sum(axis=(1, 2)).max() == 1


@pytest.mark.slow
def test_qmix_settles_on_the_m3_local_optimum():
    cfg = make_cfg("algo=qmix", *UNIFORM)
    out = train_matrix_games(cfg, [M3], seeds_per_game=5, updates=UPDATES)
    greedy = out["greedy"][0]
    assert not (greedy == 0).all(axis=1).any(), greedy  # never (A,A)
    assert (greedy == 2).all(axis=1).sum() >= 4  # the 7.9 local optimum (C,C), P1'
    assert (out["q_tot"][0][:, 0, 0] < 0).all()
