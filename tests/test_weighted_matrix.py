"""The weighted family on matrix games under uniform data (ALGORITHMS.md §11.1 P1 / P1'; issue 4).

[POW] App. F.2 setting: epsilon = 1 throughout, alpha = 0 for CW/OW/POW, POW tolerance 0.05, no warm-up,
8 envs. For CI the batch is 32 instead of 128 and the budget 10k env steps (CW: 15k) instead of 50k: the
learners are compute-bound on 2 CPU cores (POW's 10 recognition steps per update make it the costliest
test). experiments/README.md tabulates the criteria every 10k steps (batch 32) and every 2.5k (batch 128),
the rates over seeds 0-9 behind the thresholds here, and the 3-agent analogue of M3
(`python -m experiments.matrix_weighted`), which is left out here for CI time. Each test trains its games
as lanes of one vmapped program, seeds 0-4 (the lane key scheme of `jaxfactor.runner.lanes`).
"""

import numpy as np
import pytest
from conftest import make_cfg

from experiments.matrix_tables import train_matrix_games
from jaxfactor.envs.matrix_games import optimum, permute_actions

M3, M1, M0 = (make_cfg(f"env=matrix_{name}").env.params["payoff"] for name in ("m3", "m1", "m0"))  # configs/env
M3_MOVED = permute_actions(M3, [2, 0, 1], [1, 2, 0])  # optimum 8 at (B,C), the 7.9 local optimum at (A,B)
GAMES = {"M3": M3, "M1": M1, "M3 optimum at (B,C)": M3_MOVED}
# POW and CW on the two placements of M3's optimum (M1, where both are 9/10-10/10, stays in the rates table
# of experiments/README.md): 10 lanes instead of 15 for CI time.
WEIGHTED_GAMES = {"M3": M3, "M3 optimum at (B,C)": M3_MOVED}
SEEDS = 5
ENV_STEPS = {"pow_qmix": 10_000, "cw_qmix": 15_000, "ow_qmix": 10_000, "qmix": 10_000}
# Seeds that must recover the optimum. Measured on seeds 0-9 (experiments/README.md): POW 8/10 on M3 and 9/10 on
# M1 and the moved M3 at 10k (10/10 on every game at 20k); CW with alpha = 0 leaves and regains the optimum,
# 9/10 or 10/10 per game at any of 15k, 30k and 45k, a different seed each time.
MIN_SEEDS = {"pow_qmix": SEEDS - 1, "cw_qmix": SEEDS - 1}
POW_TOLERANCE = 0.05
UNIFORM = ("env=matrix_m3", "algo.eps_start=1", "algo.eps_finish=1", "algo.batch_size=32")
# POW at its defaults on a matrix game: the env's tolerance 0.05 and no warm-up, alpha 0 (issue 18).
WEIGHTED = {"pow_qmix": (), "cw_qmix": ("algo.alpha=0",), "ow_qmix": ("algo.alpha=0",), "qmix": ()}


def train(algo: str, games: list) -> dict:
    cfg = make_cfg(f"algo={algo}", *UNIFORM, *WEIGHTED[algo])
    if algo == "pow_qmix":
        assert (cfg.algo.extra["pow_tolerance"], cfg.algo.extra["pow_warmup_steps"], cfg.algo.extra["alpha"]) == (
            POW_TOLERANCE,
            0,
            0.0,
        )
    return train_matrix_games(cfg, games, SEEDS, ENV_STEPS[algo] // cfg.algo.num_envs)


def assert_recovers_the_optimum(out: dict, g: int, name: str, min_seeds: int) -> None:
    """P1, on at least `min_seeds` seeds: greedy = the optimum and Q_tot there within 0.5 of 8; for POW also Q_r
    within 0.5 of the payoff on every cell and only the optimum left in the potentially optimal set."""
    payoff, opt = out["payoffs"][g], optimum(out["payoffs"][g])
    ok = (out["greedy"][g] == np.asarray(opt)).all(axis=1)
    ok &= np.abs(out["q_tot"][g][(slice(None),) + opt] - 8.0) <= 0.5
    if "q_r" in out:
        ok &= (np.abs(out["q_r"][g] - payoff) <= 0.5).reshape(SEEDS, -1).all(axis=1)
        v_r = out["v_r"][g].reshape((SEEDS,) + (1,) * payoff.ndim)
        in_set = (np.abs(out["q_r"][g] - v_r) < POW_TOLERANCE).reshape(SEEDS, -1)
        ok &= in_set[:, np.ravel_multi_index(opt, payoff.shape)] & (in_set.sum(1) == 1)
    assert ok.sum() >= min_seeds, (
        f"{name}: the optimum {opt} recovered on seeds {np.flatnonzero(ok).tolist()} "
        f"only (greedy {out['greedy'][g].tolist()}); needed {min_seeds} of {SEEDS}"
    )


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["pow_qmix", "cw_qmix"])
def test_weighted_qmix_recovers_the_optimum_wherever_it_sits(algo):
    out = train(algo, list(WEIGHTED_GAMES.values()))
    for g, name in enumerate(WEIGHTED_GAMES):
        assert_recovers_the_optimum(out, g, name, MIN_SEEDS[algo])
    # The weighting is on (at POW's defaults: no warm-up on matrix games): with alpha = 0 the transitions outside
    # the potentially optimal set weigh 0, so the mean weight of the last update is well below uniform's 1.
    weight = out["metrics"]["train/main/weight"]
    assert (weight < 0.9).all(), weight


@pytest.mark.slow
def test_qmix_misses_the_optimum_and_solves_m0():
    """P1' and W2: a monotone mixer under uniform data never ends on the optimum of M3 or the moved M3 (M3: the
    7.9 local optimum on most seeds), and misses M1's on the majority of seeds (W2: a gradient-trained mixer can
    reach the (A,A) fit; measured on seed 0 of seeds 0-9); M0, which QMIX can represent, is solved on every seed."""
    out = train("qmix", [*GAMES.values(), M0])
    for g, name in enumerate(GAMES):
        on_optimum = (out["greedy"][g] == np.asarray(optimum(out["payoffs"][g]))).all(axis=1)
        below = out["q_tot"][g][(slice(None),) + optimum(out["payoffs"][g])] < 0
        if name == "M1":
            assert on_optimum.sum() <= 1 and below.sum() >= SEEDS - 1, (name, on_optimum, below)
        else:
            assert not on_optimum.any() and below.all(), name
    assert (out["greedy"][0] == 2).all(axis=1).sum() >= 4  # (C,C) = 7.9 on M3
    q_m1 = out["q_tot"][1]  # the gradient-trained monotone fit of M1: about -8 on row/column A, 0 on {B,C}^2
    assert np.median(np.abs(q_m1[:, 1:, 1:])) < 0.5 and np.median(q_m1[:, 0, :]) < -6
    assert (out["greedy"][3] == 0).all()
    np.testing.assert_allclose(out["q_tot"][3][:, 0, 0], 12.0, atol=0.5)


@pytest.mark.slow
@pytest.mark.extended  # 102 s in CI; a negative result (P1'), also in experiments/README.md's tables
def test_ow_qmix_misses_the_m3_optimum_on_most_seeds():
    """P1': with alpha = 0 OW-QMIX only ever raises Q_tot (weight 0 where Q_tot >= y), so the table ends above
    the payoff and the greedy action is left to that drift: measured on 2 of the 10 seeds of M3 and moved M3.
    (On M1 it finds (A,A) on 5/5 seeds, as [WQ] Theorem 2 predicts for optimistic weighting.)"""
    out = train("ow_qmix", [M3, M3_MOVED])
    hits = sum(int((out["greedy"][g] == np.asarray(optimum(out["payoffs"][g]))).all(axis=1).sum()) for g in range(2))
    assert hits <= 3, f"OW-QMIX on the optimum on {hits} of {2 * SEEDS} seeds"
    for g in range(2):
        assert (out["q_tot"][g] >= out["payoffs"][g] - 0.5).all()  # never pulled down toward the payoff
        assert (np.abs(out["q_tot"][g][(slice(None),) + optimum(out["payoffs"][g])] - 8.0) > 0.5).all()
