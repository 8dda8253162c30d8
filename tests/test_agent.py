"""The recurrent state resets at episode starts, and acting reproduces what learning recomputes."""

import jax
import jax.numpy as jnp
import numpy as np
from conftest import exploring, make_cfg

from jaxfactor.algos import make_algo
from jaxfactor.algos.factorised import previous_actions
from jaxfactor.envs import make_env
from jaxfactor.networks.agent import RecurrentQAgent, agent_inputs, unroll
from jaxfactor.runner.rollout import rollout
from jaxfactor.structs import Timestep


def test_unroll_resets_carry_exactly_where_flagged():
    agent = RecurrentQAgent(hidden_dim=8, num_actions=3)
    params = agent.init(jax.random.key(0), jnp.zeros((1, 8)), jnp.zeros((1, 5)))
    T, B = 6, 2
    x = jax.random.normal(jax.random.key(1), (T, B, 5))
    h0 = jax.random.normal(jax.random.key(2), (B, 8))  # non-zero carry from "a previous episode"
    reset = jnp.zeros((T, B), bool).at[0].set(True).at[3, 0].set(True)  # env 0 starts a new episode at t=3
    _, q, _ = unroll(agent, params, x, h0, reset)
    zeros = jnp.zeros((B, 8))
    _, q_fresh_0, _ = unroll(agent, params, x[:3], zeros, jnp.zeros((3, B), bool))
    _, q_fresh_3, _ = unroll(agent, params, x[3:], zeros, jnp.zeros((3, B), bool))
    np.testing.assert_allclose(q[:3], q_fresh_0, rtol=1e-6)  # reset at t=0 discards h0
    np.testing.assert_allclose(q[3:, 0], q_fresh_3[:, 0], rtol=1e-6)  # env 0 restarts at t=3
    assert not np.allclose(q[3:, 1], q_fresh_3[:, 1])  # env 1 did not restart: its history matters
    # No reset at all keeps h0, which changes the outputs.
    _, q_noreset, _ = unroll(agent, params, x, h0, jnp.zeros((T, B), bool))
    assert not np.allclose(q_noreset[:3], q_fresh_0)


def test_acting_matches_learning_unroll():
    """Hidden states threaded step by step through `algo.act` (reset by the `first` flag, starting from a
    stale state left by "a previous episode") equal the hidden states the learner recomputes from a zero
    state over the stored episode. Resetting on the wrong step, or never, breaks the equality."""
    cfg = make_cfg("algo=qmix", "env=predator_prey_small", "env.obs_agent_id=true")  # both input flags on
    env = make_env(cfg.env.kind, cfg.env.params)
    algo = make_algo(cfg.algo, env.spec, cfg.env.agent_inputs)
    params = algo.init(jax.random.key(0)).params
    episodes, stats = rollout(algo, env, exploring(params, 0.3), jax.random.key(1), 3, greedy=False)
    assert int(stats["length"].min()) > 5
    E, T, N = episodes.actions.shape

    # What the learner sees: the agent unrolled from zeros over the stored episode (agents folded into B).
    x = agent_inputs(
        episodes.obs,
        previous_actions(episodes.actions, episodes.starts),
        env.spec.num_actions,
        obs_last_action=cfg.env.obs_last_action,
        obs_agent_id=cfg.env.obs_agent_id,
    )
    x = jnp.swapaxes(x, 0, 1).reshape(T, E * N, -1)
    agent = RecurrentQAgent(hidden_dim=cfg.algo.agent_hidden_dim, num_actions=env.spec.num_actions)
    _, _, hs = unroll(
        agent, params["agent"], x, jnp.zeros((E * N, cfg.algo.agent_hidden_dim)), jnp.zeros((T, E * N), bool)
    )
    learned = np.asarray(jnp.swapaxes(hs.reshape(T, E, N, -1), 0, 1))  # [E, T, N, H]

    def replay(first_at):
        actor = algo.initial_actor_state(E)
        actor = actor.replace(hidden=jnp.full_like(actor.hidden, 0.7), last_action=jnp.full_like(actor.last_action, 2))
        act = jax.jit(algo.act, static_argnames="greedy")
        hidden = []
        for t in range(T):
            ts = Timestep(
                obs=episodes.obs[:, t],
                state=episodes.state[:, t],
                avail=episodes.avail[:, t],
                reward=jnp.zeros(E),
                terminal=jnp.zeros(E, bool),
                won=jnp.zeros(E, bool),
            )
            first = jnp.full((E,), t == first_at)
            _, actor = act(algo.greedy(params), actor, ts, first, jax.random.key(t), greedy=True)
            actor = actor.replace(last_action=episodes.actions[:, t])  # follow the stored behaviour actions
            hidden.append(actor.hidden)
        return np.asarray(jnp.stack(hidden, axis=1))  # [E, T, N, H]

    filled = np.asarray(episodes.filled)
    np.testing.assert_allclose(replay(first_at=0)[filled], learned[filled], atol=1e-5)
    assert np.abs(replay(first_at=1)[filled] - learned[filled]).max() > 1e-2  # reset on the wrong step
    assert np.abs(replay(first_at=-1)[filled] - learned[filled]).max() > 1e-2  # never reset


def test_act_resets_state_on_first_flag():
    cfg = make_cfg("algo=qmix", "env=predator_prey_small", "env.obs_agent_id=true")  # both input flags on
    env = make_env(cfg.env.kind, cfg.env.params)
    algo = make_algo(cfg.algo, env.spec, cfg.env.agent_inputs)
    params = algo.init(jax.random.key(0)).params
    _, ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(1), 2))
    state = algo.initial_actor_state(2)
    stale = state.replace(hidden=jnp.ones_like(state.hidden), last_action=jnp.ones_like(state.last_action))
    first = jnp.array([True, False])
    _, after_stale = algo.act(algo.greedy(params), stale, ts, first, jax.random.key(2), True)
    _, after_fresh = algo.act(algo.greedy(params), state, ts, jnp.array([True, True]), jax.random.key(2), True)
    np.testing.assert_allclose(after_stale.hidden[0], after_fresh.hidden[0], rtol=1e-6)  # env 0 was reset
    assert not np.allclose(after_stale.hidden[1], after_fresh.hidden[1])  # env 1 kept its (stale) state
