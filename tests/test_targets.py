"""TD(lambda) targets (ALGORITHMS.md §1.5) against hand-computed numbers and a plain Python loop."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxfactor.rl.targets import td_lambda_targets


def python_reference(r, d, m, q, gamma, lam):
    """Literal transcription of PyMARL2's build_td_lambda_targets, one episode at a time."""
    B, T = r.shape
    out = np.zeros((B, T))
    for b in range(B):
        g = q[b, T] * (1 - d[b].sum())
        for t in reversed(range(T)):
            g = lam * gamma * g + m[b, t] * (r[b, t] + (1 - lam) * gamma * (1 - d[b, t]) * q[b, t + 1])
            out[b, t] = g
    return out


def test_hand_computed_terminated_episode():
    # T = 3 slots of transitions, episode terminates at t = 1; slot 2 is padding.
    r = np.array([[1.0, 2.0, 0.0]])
    d = np.array([[0.0, 1.0, 0.0]])
    m = np.array([[1.0, 1.0, 0.0]])
    q = np.array([[10.0, 20.0, 30.0, 40.0]])
    gamma, lam = 0.5, 0.5
    y = np.asarray(td_lambda_targets(jnp.asarray(r), jnp.asarray(d), jnp.asarray(m), jnp.asarray(q), gamma, lam))
    # y_2 = 0 (padding), y_1 = r_1 = 2 (terminal), y_0 = r_0 + gamma[(1-lam) q_1 + lam y_1] = 1 + .5(10 + 1) = 6.5
    np.testing.assert_allclose(y, [[6.5, 2.0, 0.0]], atol=1e-6)


def test_hand_computed_truncated_episode():
    # Never terminates: the last slot bootstraps. y_1 = r_1 + gamma q_2; y_0 = r_0 + gamma[(1-lam) q_1 + lam y_1].
    r, d, m = np.array([[1.0, 2.0]]), np.zeros((1, 2)), np.ones((1, 2))
    q = np.array([[0.0, 4.0, 8.0]])
    gamma, lam = 0.9, 0.6
    y = np.asarray(td_lambda_targets(jnp.asarray(r), jnp.asarray(d), jnp.asarray(m), jnp.asarray(q), gamma, lam))
    y1 = 2.0 + 0.9 * 8.0
    y0 = 1.0 + 0.9 * (0.4 * 4.0 + 0.6 * y1)
    np.testing.assert_allclose(y, [[y0, y1]], rtol=1e-6)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.6, 1.0])
def test_matches_python_loop_on_random_episodes(lam):
    rng = np.random.default_rng(0)
    B, T = 16, 12
    ends = rng.integers(1, T + 1, size=B)  # episode lengths
    terminated = rng.random(B) < 0.6
    r = rng.normal(size=(B, T))
    d, m = np.zeros((B, T)), np.zeros((B, T))
    for b, e in enumerate(ends):
        m[b, :e] = 1
        r[b, e:] = 0
        if terminated[b] or e < T:  # shorter than T means it terminated
            d[b, e - 1] = 1
    q = rng.normal(size=(B, T + 1))
    y = td_lambda_targets(jnp.asarray(r), jnp.asarray(d), jnp.asarray(m), jnp.asarray(q), 0.99, lam)
    np.testing.assert_allclose(np.asarray(y), python_reference(r, d, m, q, 0.99, lam), rtol=1e-5, atol=1e-5)
    if lam == 0.0:  # one-step target on real transitions
        one_step = r + 0.99 * (1 - d) * q[:, 1:]
        np.testing.assert_allclose(np.asarray(y) * m, one_step * m, rtol=1e-5, atol=1e-5)


def test_target_rules_pick_the_bootstrap_action_by_hand():
    """§1.5 / §8.2 on one slot of 2 agents x 3 actions: double-Q reads the online argmax, plain greedy the target
    network's own argmax among available actions, SARSA the stored action; their reward is the stored one."""
    from types import SimpleNamespace

    from jaxfactor.algos.target_rules import Greedy, Sarsa, from_config

    q_target = jnp.array([[[[1.0, 5.0, 9.0], [7.0, 2.0, 3.0]]]])  # [B=1, T=1, N=2, A=3]
    avail = jnp.array([[[[True, True, False], [True, True, True]]]])  # agent 0 cannot take action 2
    batch = SimpleNamespace(actions=jnp.array([[[2, 1]]]), avail=avail)
    online = jnp.array([[[0, 2]]])
    assert Greedy(double_q=True).bootstrap_actions(online, q_target, batch).tolist() == [[[0, 2]]]
    assert Greedy(double_q=False).bootstrap_actions(online, q_target, batch).tolist() == [[[1, 0]]]
    assert Sarsa().bootstrap_actions(online, q_target, batch).tolist() == [[[2, 1]]]
    assert from_config("sarsa", True) == Sarsa() and from_config("greedy", False) == Greedy(double_q=False)
    reward = jnp.array([[1.5]])
    assert Greedy().reward(None, {}, batch, None, q_target, reward) is reward
