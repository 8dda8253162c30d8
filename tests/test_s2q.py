"""S2Q (ALGORITHMS.md §7): suppressed targets and weights by hand, the behaviour policy, K = 0 reduction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import exploring

from jaxfactor.algos.s2q import subvalue_index, subvalue_weights, suppressed_targets
from jaxfactor.runner.lanes import build
from jaxfactor.runner.rollout import rollout


def test_suppressed_targets_and_weights_hand_made():
    # B = 1, T = 3 slots, N = 2, K + 1 = 3 sub-values.
    y = jnp.array([[5.0, 4.0, 3.0]])
    q_star = jnp.array([[2.0, 6.0, -1.0]])  # online Q-hat-star at the executed actions
    executed = jnp.array([[[0, 0], [1, 1], [2, 2]]])
    greedy = jnp.array(
        [
            [[[0, 0], [0, 0], [0, 0]]],  # sub-value 0 greedy joint actions per slot
            [[[1, 1], [1, 1], [1, 1]]],  # sub-value 1
            [[[2, 2], [2, 2], [0, 0]]],
        ]
    )  # sub-value 2
    y_k = suppressed_targets(y, executed, greedy, q_star, suppression=1.0, floor=None)
    # slot 0: u = (A,A) = greedy^(0): suppressed for k = 1, 2 by q* = 2.
    # slot 1: u = (B,B) = greedy^(1): suppressed for k = 2 only, by 6.
    # slot 2: u = (C,C) matches greedy^(2) only: never suppressed (only earlier sub-values count).
    np.testing.assert_allclose(y_k[:, 0], [[5, 4, 3], [3, 4, 3], [3, -2, 3]])
    # A floor c = 1 and zeta = 2: phi(2) = 2, phi(6) = 6.
    floored = suppressed_targets(y, executed, greedy, jnp.array([[0.5, 6.0, 0.0]]), 2.0, 1.0)
    np.testing.assert_allclose(floored[:, 0], [[5, 4, 3], [3, 4, 3], [3, -8, 3]])

    candidates = jnp.array([[[1.0, 7.0, 0.0]], [[3.0, 2.0, -5.0]], [[0.0, 0.0, 0.0]]])  # Q*^- at greedy^(k)
    q_tot = jnp.array([[[0.0, 0.0, 0.0]], [[4.0, 3.0, 2.0]], [[2.0, -3.0, 4.0]]])
    w = subvalue_weights(q_star, candidates, q_tot, y_k, 0.75)
    # k = 0: q* >= max_k candidates?  2 >= 3 no, 6 >= 7 no, -1 >= 0 no
    np.testing.assert_allclose(w[0], [[0.75, 0.75, 0.75]])
    # k = 1: Q^(1) < y^(1) = [3, 4, 3]?  4 no, 3 yes, 2 yes
    np.testing.assert_allclose(w[1], [[0.75, 1.0, 1.0]])
    # k = 2: Q^(2) < y^(2) = [3, -2, 3]?  2 yes, -3 yes, 4 no
    np.testing.assert_allclose(w[2], [[1.0, 1.0, 0.75]])
    w_top = subvalue_weights(jnp.array([[3.0, 7.0, 0.0]]), candidates, q_tot, y_k, 0.75)
    np.testing.assert_allclose(w_top[0], [[1.0, 1.0, 1.0]])  # ties with the best candidate count


def test_subvalue_index_shared_fixed_and_ablations():
    key = jax.random.key(0)
    logits = jnp.log(jnp.array([[0.2, 0.5, 0.3]] * 400))
    fixed = jnp.arange(400) % 2 == 0
    index = subvalue_index(key, logits, fixed, 3, "none")
    assert index.shape == (400, 3)
    assert bool((index[fixed] == 0).all())  # fixed episodes follow sub-value 0
    assert bool((index == index[:, :1]).all())  # one index shared by all agents
    freq = np.bincount(np.asarray(index[~fixed, 0]), minlength=3) / 200
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=0.1)  # drawn from P-hat
    independent = subvalue_index(key, logits, jnp.zeros(400, bool), 3, "independent")
    assert not bool((independent == independent[:, :1]).all())
    assert bool((subvalue_index(key, logits, jnp.zeros(400, bool), 3, "no_softmax") == 0).all())
    uniform = subvalue_index(key, jnp.log(jnp.array([[0.98, 0.01, 0.01]] * 400)), jnp.zeros(400, bool), 3, "random")
    assert np.bincount(np.asarray(uniform[:, 0]), minlength=3).min() > 100


def test_behaviour_policy_index_is_per_episode_and_actions_available(cfg_factory):
    env, algo, _ = build(cfg_factory("algo=s2q", "env=smax_3m", "env.max_steps=10", "algo.p_fixed=1.0"))
    params = algo.init(jax.random.key(0)).params
    episodes, _ = rollout(algo, env, exploring(params, 0.0), jax.random.key(1), 4, greedy=False)
    greedy_episodes, _ = rollout(algo, env, algo.greedy(params), jax.random.key(1), 4, greedy=True)
    # p_fixed = 1 and epsilon 0: the behaviour is sub-value 0's greedy policy, identical to evaluation.
    np.testing.assert_array_equal(episodes.actions, greedy_episodes.actions)
    explore, _ = rollout(algo, env, exploring(params, 0.5), jax.random.key(2), 4, greedy=False)
    taken = jnp.take_along_axis(explore.avail, explore.actions[..., None], -1)[..., 0]
    assert bool(taken[explore.filled].all())  # never an unavailable action


@pytest.mark.extended  # 37 s in CI
def test_one_subvalue_without_weighting_is_qmix_plus_central_loss(cfg_factory):
    """K = 0 and w = 1: S2Q's loss minus its encoder-decoder terms equals the "QMIX + Q-hat-star"
    WQMIX ablation's loss for the same parameters (both without 1/2 factors)."""
    _, s2q, _ = build(
        cfg_factory("algo=s2q", "env=smax_3m", "env.max_steps=10", "algo.num_subvalues=0", "algo.ablation=no_wtd")
    )
    cfg = cfg_factory(
        "algo=cw_qmix",
        "env=smax_3m",
        "env.max_steps=10",
        "algo.weighting=uniform",
        "algo.loss_scale=1.0",
        "algo.central_loss_scale=1.0",
    )
    env, cw, _ = build(cfg)
    state = s2q.init(jax.random.key(0))
    batch, _ = rollout(s2q, env, exploring(state.params, 1.0), jax.random.key(1), 4, greedy=False)
    p = state.params
    cw_params = {
        "agent": jax.tree.map(lambda x: x[0], p["subvalue_agents"]),
        "mixer": jax.tree.map(lambda x: x[0], p["subvalue_mixers"]),
        "central_agent": p["central_agent"],
        "central_mixer": p["central_mixer"],
    }
    targets = {"central_agent": p["central_agent"], "central_mixer": p["central_mixer"]}
    s2q_loss, (m, _) = jax.jit(s2q.stages[0].loss)(p, targets, batch, state.hp, jax.random.key(2), {})
    cw_targets = {**targets, "agent": cw_params["agent"], "mixer": cw_params["mixer"]}
    cw_loss, _ = jax.jit(cw.stages[0].loss)(cw_params, cw_targets, batch, state.hp, jax.random.key(2), {})
    np.testing.assert_allclose(float(s2q_loss - m["ed_kl"] - m["ed_state_mse"]), float(cw_loss), rtol=1e-5)


@pytest.mark.parametrize("algo,expect_grad", [("s2q", False), ("s2q_comm", True)])
def test_comm_latent_feeds_the_subvalues(cfg_factory, algo, expect_grad):
    """S2Q-Comm (§7.8): the TD losses reach the encoder through z; in plain S2Q only L_ED trains it."""
    env, s2q, _ = build(cfg_factory(f"algo={algo}", "env=matrix_m3"))
    state = s2q.init(jax.random.key(0))
    batch, _ = rollout(s2q, env, exploring(state.params, 1.0), jax.random.key(1), 8, greedy=False)
    targets = state.target_params

    def td_only(encoder):
        params = {**state.params, "encoder": encoder}
        loss, (m, _) = s2q.stages[0].loss(params, targets, batch, state.hp, jax.random.key(2), {})
        return loss - m["ed_kl"] - m["ed_state_mse"]

    grads = jax.jit(jax.grad(td_only))(state.params["encoder"])
    norm = float(sum(jnp.abs(g).sum() for g in jax.tree.leaves(grads)))
    assert (norm > 1e-6) == expect_grad, norm
