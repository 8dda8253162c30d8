"""MPE and Overcooked adapters (shapes, dtypes, team reward, scripted prey), matrix payoff shifts, and
a tiny QMIX budget on every new environment."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_episode, train_briefly

from jaxfactor.envs import make_env
from jaxfactor.envs.matrix_games import MatrixGame
from jaxfactor.errors import ConfigError
from jaxfactor.runner.lanes import build

NEW_ENVS = [
    "mpe_simple_spread",
    "mpe_simple_tag",
    "overcooked_cramped_room",
    "overcooked_asymm_advantages",
    "predator_prey_small",
]


@pytest.mark.parametrize("env_name", NEW_ENVS)
def test_shapes_dtypes_and_jit_vmap(cfg_factory, env_name):
    env, _, _ = build(cfg_factory(f"env={env_name}"))
    spec = env.spec

    ts = jax.jit(jax.vmap(lambda key: random_episode(env, key, 5)[1]))(jax.random.split(jax.random.key(0), 3))
    assert ts.obs.shape == (3, 5, spec.num_agents, spec.obs_dim) and ts.obs.dtype == jnp.float32
    assert ts.state.shape == (3, 5, spec.state_dim) and ts.state.dtype == jnp.float32
    assert ts.avail.shape == (3, 5, spec.num_agents, spec.num_actions) and ts.avail.dtype == jnp.bool_
    assert ts.reward.shape == (3, 5) and ts.reward.dtype == jnp.float32 and ts.terminal.dtype == jnp.bool_
    assert np.isfinite(np.asarray(ts.obs)).all() and np.isfinite(np.asarray(ts.reward)).all()
    assert not np.array_equal(ts.obs[0], ts.obs[1])  # different keys, different episodes


def test_mpe_team_rewards():
    spread = make_env("mpe_spread", {})
    state, _ = spread.reset(jax.random.key(0))
    actions = jnp.array([1, 2, 3])
    _, _, rewards, _, _ = spread.env.step_env(jax.random.key(1), state, dict(zip(spread.learners, actions)))
    _, ts = spread.step(jax.random.key(1), state, actions)
    assert float(ts.reward) == pytest.approx(sum(float(rewards[a]) for a in spread.learners))
    # Predators share +10 per contact: put the prey on top of predator 0.
    tag = make_env("mpe_tag", {"prey_policy": "flee"})
    state, _ = tag.reset(jax.random.key(0))
    state = state.replace(p_pos=state.p_pos.at[3].set(state.p_pos[0]))
    _, ts = tag.step(jax.random.key(1), state, jnp.zeros(3, jnp.int32))
    assert float(ts.reward) >= 10.0


def test_scripted_prey_flees_the_nearest_predator_and_stays_near_the_arena():
    tag = make_env("mpe_tag", {"prey_policy": "flee"})
    state, _ = tag.reset(jax.random.key(0))
    pos = jnp.array([[0.5, 0.0], [0.0, -3.0], [3.0, 3.0], [0.0, 0.0]] + [[5.0, 5.0]] * 2)
    assert int(tag.prey_action(jax.random.key(0), state.replace(p_pos=pos))) == 1  # -x, away from (0.5, 0)
    pos = pos.at[3].set(jnp.array([0.0, 1.5])).at[0].set(jnp.array([0.0, 1.2]))
    assert int(tag.prey_action(jax.random.key(0), state.replace(p_pos=pos))) == 3  # fleeing +y would leave: -y
    rand = make_env("mpe_tag", {"prey_policy": "random"})
    acts = jax.vmap(lambda k: rand.prey_action(k, state))(jax.random.split(jax.random.key(0), 500))
    assert set(np.asarray(acts).tolist()) == {0, 1, 2, 3, 4}
    with pytest.raises(ConfigError, match="env.prey_policy"):
        make_env("mpe_tag", {"prey_policy": "smart"})


def test_overcooked_shared_reward_and_layout_errors():
    env = make_env("overcooked", {"layout": "cramped_room"})
    assert env.spec.num_agents == 2 and env.spec.num_actions == 6 and env.spec.episode_limit == 400
    with pytest.raises(ConfigError, match="unknown env.layout 'kitchen'; allowed: .*cramped_room"):
        make_env("overcooked", {"layout": "kitchen"})
    with pytest.raises(ConfigError, match="env.shaping"):
        make_env("overcooked", {"layout": "cramped_room", "shaping": -1.0})


def test_payoff_shift_switches_the_table_at_shift_at():
    before = [[8, -12, -12], [-12, 7, 0], [-12, 0, 6]]
    after = [[6, -12, -12], [-12, 5, 0], [-12, 0, 10]]
    env = MatrixGame(before, payoff_after=after, shift_at=100)

    @jax.jit
    def table(t_env):
        def reward(a, b):
            state, _ = env.reset(jax.random.key(0), t_env)
            return env.step(jax.random.key(0), state, jnp.array([a, b]))[1].reward

        idx = jnp.arange(3)
        return jax.vmap(lambda a: jax.vmap(lambda b: reward(a, b))(idx))(idx)

    np.testing.assert_array_equal(table(jnp.int32(0)), before)
    np.testing.assert_array_equal(table(jnp.int32(99)), before)
    np.testing.assert_array_equal(table(jnp.int32(100)), after)
    np.testing.assert_array_equal(table(jnp.int32(10**6)), after)
    np.testing.assert_array_equal(env.payoff_in_force(99), before)
    np.testing.assert_array_equal(env.payoff_in_force(100), after)
    with pytest.raises(ConfigError, match="env.payoff_after is set but env.shift_at is not"):
        make_env("matrix", {"payoff": before, "payoff_after": after})
    with pytest.raises(ConfigError, match="env.payoff_after has shape \\[2, 2\\]"):
        make_env("matrix", {"payoff": before, "payoff_after": [[1, 2], [3, 4]], "shift_at": 5})


def test_payoff_shift_happens_inside_the_training_loop(cfg_factory):
    # All-zero table, then all-one from 80 env steps: rollouts collected from t_env = 80 on earn 1.
    cfg = cfg_factory(
        "env=matrix",
        "env.payoff=[[0,0],[0,0]]",
        "env.payoff_after=[[1,1],[1,1]]",
        "env.shift_at=80",
        "algo.batch_size=8",
        "algo.buffer_size=64",
        "num_seeds=1",
    )
    from jaxfactor.runner.anakin import make_chunk
    from jaxfactor.runner.learn import init_lane

    env, algo, _ = build(cfg)
    runner = init_lane(algo, 64, jax.random.key(0))
    _, metrics = jax.jit(make_chunk(algo, env, 8, 8, 20, axis_name=None))(runner)
    returns = np.asarray(metrics["rollout/return"])
    np.testing.assert_array_equal(returns, [0.0] * 10 + [1.0] * 10)


# predator_prey_small trains in test_stag_hunt, test_golden and test_learn_step; overcooked_asymm_advantages is
# cramped_room's adapter on another layout (its shapes and steps are checked above).
TRAINED_HERE = ["mpe_simple_spread", "mpe_simple_tag", "overcooked_cramped_room"]


@pytest.mark.extended  # 41-54 s each in CI (compilation); the adapters' shapes and steps are checked above
@pytest.mark.parametrize("env_name", TRAINED_HERE)
def test_qmix_tiny_budget_finite_losses(cfg_factory, env_name):
    short = ["env.max_steps=40"] if env_name.startswith("overcooked") else []  # 400-step episodes: CI time
    cfg = cfg_factory(
        "algo=qmix",
        f"env={env_name}",
        *short,
        "algo.batch_size=4",
        "algo.buffer_size=8",
        "algo.num_envs=4",
        "num_seeds=2",
        "algo.target_update_episodes=4",
    )
    metrics = train_briefly(cfg, updates=3)  # learning from the 1st update (4 episodes stored)
    assert (metrics["train/learning"] == 1).all() and np.isfinite(metrics["train/main/loss"]).all()
    assert np.isfinite(metrics["rollout/return"]).all()
