"""Non-monotonic QMIX with SARSA/RND (ALGORITHMS.md §8) and ME-IGM (§9): properties and hand-computed cases."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import exploring
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.target_rules import soft_rewards
from jaxfactor.cli import load_config
from jaxfactor.envs.matrix_games import joint_tables
from jaxfactor.networks.entropy import OrderPreservingTransform
from jaxfactor.networks.mixers import MixerInput, make_mixer
from jaxfactor.rl.policies import masked_argmax
from jaxfactor.rl.targets import td_lambda_targets
from jaxfactor.runner.lanes import build
from jaxfactor.runner.rollout import rollout

N, A, G = 3, 5, 7


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), layers=st.sampled_from([1, 2]), scale=st.floats(0.1, 30.0))
def test_opt_preserves_the_order_of_its_input(seed, layers, scale):
    k_init, k_q, k_s = jax.random.split(jax.random.key(seed), 3)
    opt = OrderPreservingTransform(num_agents=N, layers=layers)
    params = opt.init(k_init, jnp.zeros((1, N, A)), jnp.zeros((1, G)))
    q = scale * jax.random.normal(k_q, (4, N, A))
    state = jax.random.normal(k_s, (4, G))
    out = np.asarray(opt.apply(params, q, state), np.float64)
    q = np.asarray(q, np.float64)
    # For every pair of actions of one agent: q_a < q_b  =>  OPT(q)_a <= OPT(q)_b.
    diff_in = q[..., :, None] - q[..., None, :]
    diff_out = out[..., :, None] - out[..., None, :]
    assert np.all(diff_out[diff_in < 0] <= 1e-5)


@functools.cache
def me_on_smax():
    return build(load_config(["algo=me_qmix", "env=smax_3m", "algo.opt_layers=2"], run_dir="/tmp/jaxfactor-test"))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_me_policy_mode_is_the_utilities_argmax(seed):
    env, algo, _ = me_on_smax()
    k_p, k_q, k_s, k_a = jax.random.split(jax.random.key(seed), 4)
    params = algo.init(k_p).params
    params["log_alpha"] = jnp.log(jax.random.uniform(k_a, (), minval=0.05, maxval=5.0))
    n, a = env.spec.num_agents, env.spec.num_actions
    q = 5 * jax.random.normal(k_q, (6, n, a))
    avail = jax.random.bernoulli(k_s, 0.6, (6, n, a)).at[..., 0].set(True)
    state = jax.random.normal(k_s, (6, env.spec.state_dim))
    log_pi = algo.extras["log_policy"](params, q, state, avail)
    np.testing.assert_array_equal(jnp.argmax(log_pi, -1), masked_argmax(q, avail))
    assert float(jnp.exp(log_pi)[~avail].max(initial=0.0)) < 1e-6  # unavailable actions are never sampled


def fit_table(mixer_name: str, table: np.ndarray, steps: int = 2000) -> float:
    """Free utilities + a mixer on a constant state, fitted by Adam to a 3x3 joint table; returns the SSE."""
    mixer = make_mixer(mixer_name, embed_dim=32, hypernet_dim=64)
    state = jnp.ones((9, 4))
    joint = jnp.array([(a, b) for a in range(3) for b in range(3)])
    # Random utilities: all-equal ones are a saddle point of both mixers.
    params = {
        "q": jax.random.normal(jax.random.key(1), (2, 3)),
        "mixer": mixer.init(jax.random.key(0), MixerInput(jnp.zeros((9, 2)), state)),
    }

    def sse(p):
        qs = jnp.stack([p["q"][0][joint[:, 0]], p["q"][1][joint[:, 1]]], -1)
        return jnp.sum((mixer.apply(p["mixer"], MixerInput(qs, state)) - table.reshape(-1)) ** 2)

    opt = optax.adam(1e-2)
    opt_state = opt.init(params)

    @jax.jit
    def step(carry, _):
        p, s = carry
        loss, g = jax.value_and_grad(sse)(p)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), loss

    (params, _), _ = jax.lax.scan(step, (params, opt_state), None, length=steps)
    return float(sse(params))


def test_nonmonotone_mixer_fits_a_table_the_monotone_one_cannot():
    m4 = np.array([[12, -12, -12], [-12, 0, 0], [-12, 0, 0]], np.float32)
    assert fit_table("nmix", m4) < 1.0
    assert fit_table("qmix", m4) > 100.0  # any monotone fit of M4 keeps a large error


def test_soft_td_lambda_hand_computed():
    # One episode, two transitions, not terminal; gamma 0.5, lambda 0.5, alpha 2.
    r = jnp.array([[1.0, 2.0]])
    d = jnp.array([[False, False]])
    log_pi_next = jnp.array([[-1.0, -0.5]])  # log pi_jt(u_1 | s_1), log pi_jt(u_2 | s_2)
    q_bar = jnp.array([[0.0, 4.0, 6.0]])  # target Q_tot at the stored u_0, u_1, u_2
    r_soft = soft_rewards(r, d, log_pi_next, jnp.float32(2.0), 0.5)
    np.testing.assert_allclose(r_soft, [[1.0 + 0.5 * 2.0 * 1.0, 2.0 + 0.5 * 2.0 * 0.5]])  # [[2, 2.5]]
    y = td_lambda_targets(r_soft, d, jnp.ones((1, 2)), q_bar, 0.5, 0.5)
    # G_2 = 6; G_1 = 0.25*6 + 2.5 + 0.25*6 = 5.5; G_0 = 0.25*5.5 + 2 + 0.25*4 = 4.375
    np.testing.assert_allclose(y, [[4.375, 5.5]], rtol=1e-6)
    # A terminal step drops the entropy shift (and the bootstrap).
    np.testing.assert_allclose(soft_rewards(r, jnp.array([[False, True]]), log_pi_next, 2.0, 0.5), [[2.0, 2.0]])


def small_batch(cfg_factory, *overrides, env="matrix_m4", num_envs=16):
    cfg = cfg_factory(*overrides, f"env={env}")
    env_obj, algo, _ = build(cfg)
    learner = algo.init(jax.random.key(0))
    batch, _ = rollout(algo, env_obj, exploring(learner.params, 1.0), jax.random.key(1), num_envs, greedy=False)
    return cfg, env_obj, algo, learner, batch


def test_sarsa_bootstrap_uses_the_stored_next_action(cfg_factory):
    cfg, env, _, learner, batch = small_batch(
        cfg_factory, "algo=nmix", "algo.bootstrap=sarsa", env="smax_3m", num_envs=2
    )
    learner_fac = make_factorised(cfg.algo, env.spec, cfg.env.agent_inputs)
    params = learner.params
    target = jax.tree.map(lambda x: x + 0.01, params)  # a target that differs from the online net
    ctx = learner_fac.td_context(params, target, batch, learner.hp)
    q_target = learner_fac.utilities(target["agent"], batch)
    expected = learner_fac.mix(target["mixer"], q_target, batch.actions, batch.state, batch.avail)
    np.testing.assert_allclose(ctx.q_bar, expected, rtol=1e-6)
    y = td_lambda_targets(batch.reward[:, :-1], batch.terminal[:, :-1], batch.mask, expected, 0.99, 0.6)
    np.testing.assert_allclose(ctx.y, y, rtol=1e-5, atol=1e-5)
    greedy = make_factorised(
        cfg.algo.__class__(**{**cfg.algo.__dict__, "bootstrap": "greedy"}), env.spec, cfg.env.agent_inputs
    )
    assert not np.allclose(greedy.td_context(params, target, batch, learner.hp).q_bar, expected)


def test_temperature_moves_the_entropy_toward_its_target(cfg_factory):
    # Target joint entropy 0.6 x 2 agents = 1.2 nats; uniform policies over 3 actions have 2.2.
    _, env, algo, learner0, batch = small_batch(cfg_factory, "algo=me_qmix", "algo.target_entropy=0.6")
    _, ts = env.reset(jax.random.key(0))
    update = jax.jit(algo.update)

    def entropy(params):
        pi = joint_tables(algo, params, ts)["policy"]
        return float(-jnp.sum(pi * jnp.log(pi + 1e-30)))

    for alpha_init, direction in ((1.0, -1), (0.003, +1)):  # too random: alpha falls; too greedy: it rises
        learner = learner0.replace(params={**learner0.params, "log_alpha": jnp.log(jnp.float32(alpha_init))})
        before = entropy(learner.params)
        assert np.sign(1.2 - before) == direction
        for i in range(5):
            learner, _ = update(learner, batch, jax.random.key(i))
        # alpha and the entropy move together toward the target
        assert np.sign(float(jnp.exp(learner.params["log_alpha"])) - alpha_init) == direction
        assert np.sign(entropy(learner.params) - before) == direction


@pytest.mark.extended  # 38 s in CI
def test_rnd_predictor_loss_decreases_on_a_fixed_stream(cfg_factory):
    _, _, algo, learner, batch = small_batch(
        cfg_factory, "algo=nmix", "algo.bonus=rnd", "algo.bootstrap=sarsa", env="smax_3m", num_envs=4
    )
    update = jax.jit(algo.update)
    losses = []
    for i in range(60):
        learner, metrics = update(learner, batch, jax.random.key(i))
        losses.append(float(metrics["rnd/loss"]))
        assert float(metrics["rnd/intrinsic_reward"]) > 0.0
    assert losses[-1] < 0.5 * losses[0]
    assert float(learner.stats["count"]) > 60  # the running moments accumulate over updates


def test_me_igm_requires_the_sarsa_bootstrap(cfg_factory):
    from jaxfactor.errors import ConfigError

    cfg = cfg_factory("algo=me_qmix", "env=matrix_m1", "algo.bootstrap=greedy")
    with pytest.raises(ConfigError, match="algo.bootstrap=greedy; allowed: sarsa"):
        build(cfg)
