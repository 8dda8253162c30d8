"""Stag-hunt predator-prey (ALGORITHMS.md §10.3): hand-built states, rules, and statistics against an
independent plain-Python implementation of the same rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_episode

from jaxfactor.envs import make_env
from jaxfactor.envs.stag_hunt import CATCH, STAY, StagHunt, StagHuntState
from jaxfactor.errors import ConfigError
from jaxfactor.rl.policies import uniform_available

R, D, L, U = 0, 1, 2, 3  # right, down, left, up
P = -3.0


def make(num_agents=3, num_stags=2, **kw):
    return StagHunt(**{"rows": 5, "cols": 5, "num_agents": num_agents, "num_stags": num_stags, "penalty": P, **kw})


def state(agents, stags, frozen=None, alive=None):
    n, p = len(agents), len(stags)
    return StagHuntState(
        agent_pos=jnp.array(agents, jnp.int32),
        prey_pos=jnp.array(stags, jnp.int32),
        frozen=jnp.array(frozen or [False] * n),
        prey_alive=jnp.array(alive or [True] * p),
        t=jnp.array(0, jnp.int32),
    )


def outcomes(env, st, actions, keys=range(24)):
    """Step the same state under many keys (agent order, prey order and prey moves vary)."""
    step = jax.jit(env.step)
    return [step(jax.random.key(k), st, jnp.array(actions)) for k in keys]


def test_capture_by_two_adjacent_catchers_pays_and_freezes_both():
    env = make()
    st = state(agents=[(2, 1), (2, 3), (0, 4)], stags=[(2, 2), (4, 0)])
    for new, ts in outcomes(env, st, [CATCH, CATCH, STAY]):
        assert float(ts.reward) == 10.0
        assert new.frozen.tolist() == [True, True, False] and new.prey_alive.tolist() == [False, True]
        assert not bool(ts.terminal)
        grid = np.asarray(ts.state).reshape(5, 5, 3)
        assert grid[..., 0].sum() == 1 and grid[0, 4, 0] == 1  # frozen agents left the grid
        assert grid[..., 1].sum() == 1  # the captured stag is gone
        np.testing.assert_array_equal(ts.obs[:2], 0.0)  # frozen agents observe nothing
        assert ts.avail[:2].tolist() == [[False] * 4 + [True, False]] * 2  # and may only stay


def test_lone_catcher_costs_exactly_one_penalty_per_prey():
    env = make()
    # Agent 0 catches beside stag 0; agent 1 is adjacent too but stays: one catcher, one penalty.
    st = state(agents=[(2, 1), (1, 2), (4, 4)], stags=[(2, 2), (0, 0)])
    for new, ts in outcomes(env, st, [CATCH, STAY, STAY]):
        assert float(ts.reward) == P and not bool(new.frozen.any()) and bool(new.prey_alive.all())
    # A lone catcher between two stags is charged once for each of them.
    st = state(agents=[(2, 2), (4, 4), (0, 4)], stags=[(2, 1), (2, 3)])
    for _, ts in outcomes(env, st, [CATCH, STAY, STAY]):
        assert float(ts.reward) == 2 * P


def test_catcher_beside_two_stags_counts_for_both_until_frozen():
    env = make()
    # Agent 0 sits between two stags; agents 1 and 2 each touch one of them. Whichever stag is
    # processed first is captured by (0, its partner); agent 0 is then frozen and no longer counts,
    # so the other stag sees one catcher: reward 10 + p whatever the order.
    st = state(agents=[(2, 2), (1, 1), (1, 3)], stags=[(2, 1), (2, 3)])
    dead = set()
    for new, ts in outcomes(env, st, [CATCH, CATCH, CATCH]):
        assert float(ts.reward) == 10.0 + P
        assert bool(new.frozen[0]) and int(new.frozen.sum()) == 2 and int(new.prey_alive.sum()) == 1
        dead.add(int(np.argmin(np.asarray(new.prey_alive))))
    assert dead == {0, 1}  # both processing orders occur
    # Only agent 1 partners: captured if stag 0 goes first (no penalty at stag 1, as agent 0 is frozen),
    # otherwise agent 0 alone is punished at stag 1 and then captures stag 0 with agent 1.
    rewards = {float(ts.reward) for _, ts in outcomes(env, st, [CATCH, CATCH, STAY])}
    assert rewards == {10.0, 10.0 + P}


def test_three_catchers_on_one_stag_all_freeze_and_all_frozen_terminates():
    env = make(num_stags=2)
    st = state(agents=[(2, 1), (1, 2), (3, 2)], stags=[(2, 2), (4, 4)])
    for new, ts in outcomes(env, st, [CATCH, CATCH, CATCH]):
        assert float(ts.reward) == 10.0 and bool(new.frozen.all())
        assert bool(ts.terminal)  # every agent frozen
    # All prey dead also terminates.
    env1 = make(num_agents=3, num_stags=1)
    st = state(agents=[(2, 1), (2, 3), (0, 0)], stags=[(2, 2)])
    for _, ts in outcomes(env1, st, [CATCH, CATCH, STAY]):
        assert bool(ts.terminal) and float(ts.reward) == 10.0


def test_frozen_agents_neither_block_nor_count():
    env = make()
    # Agent 0 is frozen at (2,1) beside the stag: it does not count as a catcher (agent 1 alone is
    # punished) and agent 2 may walk into its cell.
    st = state(agents=[(2, 1), (2, 3), (2, 0)], stags=[(2, 2), (4, 4)], frozen=[True, False, False])
    for new, ts in outcomes(env, st, [CATCH, CATCH, R]):
        assert float(ts.reward) == P
        assert new.agent_pos[2].tolist() == [2, 1]
        assert bool(new.frozen[0]) and not bool(new.frozen[1])


def test_movement_is_blocked_by_agents_and_stags_and_sequential():
    env = make()
    # Agent 0 walks into a stag, agent 1 into agent 2 who stays: both blocked.
    st = state(agents=[(0, 0), (3, 3), (3, 4)], stags=[(0, 1), (1, 4)])
    for new, _ in outcomes(env, st, [R, R, STAY]):
        assert new.agent_pos.tolist()[:3] == [[0, 0], [3, 3], [3, 4]]
    # A chain: agent 1 steps right, agent 0 follows into its old cell only if agent 1 moved first.
    st = state(agents=[(4, 0), (4, 1), (0, 4)], stags=[(0, 0), (2, 4)])
    finals = {tuple(new.agent_pos[0].tolist()) for new, _ in outcomes(env, st, [R, R, STAY])}
    assert finals == {(4, 0), (4, 1)}


def test_available_actions():
    env = make()
    st = state(agents=[(0, 0), (2, 2), (4, 4)], stags=[(1, 0), (0, 4)], frozen=[False, False, True])
    avail = np.asarray(env.avail_actions(st))
    #            right  down   left   up     stay  catch
    assert avail[0].tolist() == [True, True, False, False, True, True]  # corner, stag below
    assert avail[1].tolist() == [True, True, True, True, True, False]  # nothing adjacent
    assert avail[2].tolist() == [False, False, False, False, True, False]  # frozen: stay only
    dead = state(agents=[(0, 0), (2, 2), (4, 4)], stags=[(1, 0), (0, 4)], alive=[False, True])
    assert not bool(env.avail_actions(dead)[0, CATCH])  # dead prey cannot be caught


def test_observation_window_is_centred_and_zero_outside():
    env = make()
    st = state(agents=[(0, 0), (2, 2), (4, 4)], stags=[(1, 0), (0, 4)])
    ts = env._timestep(st, jnp.array(0.0), jnp.array(False))
    obs = np.asarray(ts.obs).reshape(3, 5, 5, 3)
    assert obs[0, 2, 2, 0] == 1 and obs[0, 3, 2, 1] == 1  # itself at the centre, stag one row below
    assert obs[0, :2].sum() == 0 and obs[0, :, :2].sum() == 0  # rows/cols outside the grid are zero
    assert obs[1, ..., 0].sum() == 3 and obs[1, ..., 1].sum() == 2  # the centre agent sees the whole 5x5 grid


def test_time_limit_is_a_truncation_not_a_termination():
    # One agent can never capture a stag, so only the 200-step limit ends the episode.
    env = StagHunt(rows=4, cols=4, num_agents=1, num_stags=1)
    assert env.spec.episode_limit == 200

    def run(key):
        st, ts = random_episode(env, key, 200)
        return st.t, ts.terminal

    t, terminal = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 8))
    assert np.all(np.asarray(t) == 200) and not bool(terminal.any())


def test_reset_places_distinct_cells_uniformly():
    env = StagHunt()
    states, _ = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 2000))
    cells = np.concatenate([np.asarray(states.agent_pos), np.asarray(states.prey_pos)], 1)  # [K, 16, 2]
    flat = cells[..., 0] * 10 + cells[..., 1]
    assert all(len(set(row)) == 16 for row in flat.tolist())
    counts = np.bincount(flat.ravel(), minlength=100)
    assert counts.min() > 0.7 * 320 and counts.max() < 1.3 * 320  # 2000 * 16 / 100 expected per cell
    assert not bool(states.frozen.any()) and bool(states.prey_alive.all()) and int(states.t.max()) == 0


def random_policy_stats(env, key, episodes):
    """Uniform-random-available policy; per episode: return, captures, length."""
    return jax.device_get(random_policy_program(env, episodes)(key))


def random_policy_program(env, episodes):
    """The jitted program behind `random_policy_stats` (compile once, call with several keys)."""

    def run(key):
        st, ts = env.reset(key)

        def body(carry, k):
            st, ts, ret, done, length = carry
            k_a, k_s = jax.random.split(k)
            new_st, new_ts = env.step(k_s, st, uniform_available(k_a, ts.avail))
            ret = ret + jnp.where(done, 0.0, new_ts.reward)
            length = length + (~done).astype(jnp.int32)
            keep = lambda n, o: jax.tree.map(lambda a, b: jnp.where(done, b, a), n, o)  # noqa: E731
            return (keep(new_st, st), keep(new_ts, ts), ret, done | new_ts.terminal, length), None

        init = (st, ts, jnp.array(0.0), jnp.array(False), jnp.array(0))
        (st, _, ret, _, length), _ = jax.lax.scan(body, init, jax.random.split(key, env.spec.episode_limit))
        return ret, (~st.prey_alive).sum(), length

    return jax.jit(lambda key: jax.vmap(run)(jax.random.split(key, episodes)))


def test_jit_vmap_deterministic_for_a_fixed_key():
    env = make_env("stag_hunt", {"rows": 6, "cols": 6, "num_agents": 4, "num_stags": 2, "episode_limit": 50})
    program = random_policy_program(env, 64)
    a, b, c = (jax.device_get(program(jax.random.key(k))) for k in (3, 3, 4))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, z) for x, z in zip(a, c))


MOVES = [(0, 1), (1, 0), (0, -1), (-1, 0)]


def reference_episode(rng, rows, cols, n, num_stags, penalty, limit):
    """Plain-Python stag hunt straight from the §10.3 rules, uniform-random-available policy."""
    cells = rng.choice(rows * cols, n + num_stags, replace=False)
    agents = [divmod(int(c), cols) for c in cells[:n]]
    prey = [divmod(int(c), cols) for c in cells[n:]]
    frozen, alive = [False] * n, [True] * num_stags
    inside = lambda c: 0 <= c[0] < rows and 0 <= c[1] < cols  # noqa: E731
    near = lambda a, b: abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1  # noqa: E731

    def occupied(c):
        return any(a == c and not f for a, f in zip(agents, frozen)) or any(q == c and al for q, al in zip(prey, alive))

    ret = 0.0
    for t in range(limit):
        acts = []
        for i in range(n):
            if frozen[i]:
                acts.append(STAY)
                continue
            avail = [m for m, (dr, dc) in enumerate(MOVES) if inside((agents[i][0] + dr, agents[i][1] + dc))]
            avail.append(STAY)
            if any(al and near(q, agents[i]) for q, al in zip(prey, alive)):
                avail.append(CATCH)
            acts.append(int(rng.choice(avail)))
        for i in rng.permutation(n):
            if frozen[i] or acts[i] >= 4:
                continue
            target = (agents[i][0] + MOVES[acts[i]][0], agents[i][1] + MOVES[acts[i]][1])
            if inside(target) and not occupied(target):
                agents[i] = target
        for j in rng.permutation(num_stags):
            if not alive[j]:
                continue
            adjacent = [i for i in range(n) if not frozen[i] and near(agents[i], prey[j])]
            catching = [i for i in adjacent if acts[i] == CATCH]
            if len(catching) >= 2:
                alive[j] = False
                ret += 10.0
                for i in catching:
                    frozen[i] = True
                continue
            if catching:
                ret += penalty
            free = [(prey[j][0] + dr, prey[j][1] + dc) for dr, dc in MOVES]
            free = [c for c in free if inside(c) and not occupied(c)]
            if free:
                prey[j] = free[rng.integers(len(free))]
        if not any(alive) or all(frozen):
            return ret, num_stags - sum(alive), t + 1
    return ret, num_stags - sum(alive), limit


def test_random_policy_statistics_match_an_independent_implementation():
    rows, cols, n, stags, penalty, limit, episodes = 4, 4, 4, 2, -1.0, 40, 600
    env = StagHunt(rows=rows, cols=cols, num_agents=n, num_stags=stags, penalty=penalty, episode_limit=limit)
    ret, caught, length = random_policy_stats(env, jax.random.key(0), episodes)
    rng = np.random.default_rng(0)
    ref = np.array([reference_episode(rng, rows, cols, n, stags, penalty, limit) for _ in range(episodes)])
    for name, ours, theirs in (
        ("return", ret, ref[:, 0]),
        ("captures", caught, ref[:, 1]),
        ("length", length, ref[:, 2]),
    ):
        ours, theirs = np.asarray(ours, float), theirs.astype(float)
        se = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4 * se + 1e-6, (name, ours.mean(), theirs.mean(), se)
    assert np.asarray(caught).mean() > 0.3  # the statistic is informative: captures do happen


def test_bad_parameters_are_named():
    with pytest.raises(ConfigError, match="env.penalty"):
        make_env("stag_hunt", {"penalty": 2.0})
    with pytest.raises(ConfigError, match="env.obs_window"):
        make_env("stag_hunt", {"obs_window": 4})
    with pytest.raises(ConfigError, match="exceed the 3x3 grid"):
        make_env("stag_hunt", {"rows": 3, "cols": 3})
    with pytest.raises(ConfigError, match="env.num_agents"):
        make_env("stag_hunt", {"num_agents": 0})
    with pytest.raises(ConfigError, match="env.map_name is not a key of env kind 'stag_hunt'"):
        make_env("stag_hunt", {"map_name": "3m"})


@pytest.mark.slow
def test_qmix_learns_to_hunt_on_the_small_preset(cfg_factory):
    """CI-sized version of §11.2 PP0: greedy return after 60k env steps per seed clearly above the
    untrained greedy policy (the full 10x10 run lives in experiments/, numbers in its README). Batch 32
    episodes instead of 128 (a quarter of the compute): seeds 0-5 end at 9.7, 15.0, 10.6, 16.3, 14.7, 14.1
    (batch 128: 13.8, 13.1 on seeds 0-1)."""
    from jaxfactor.runner.anakin import make_evaluate
    from jaxfactor.runner.lanes import build, init_lanes
    from jaxfactor.runner.loop import run

    cfg = cfg_factory(
        "algo=qmix",
        "env=predator_prey_small",
        "num_seeds=2",
        "total_timesteps=60000",
        "log_every_steps=20000",
        "eval_every_steps=60000",
        "algo.batch_size=32",
    )
    env, algo, _ = build(cfg)
    untrained = init_lanes(cfg, algo).learner.params  # the parameters `run` starts from
    before = jax.jit(jax.vmap(make_evaluate(algo, env, 32)))(untrained, jax.random.split(jax.random.key(7), 2))
    before = np.asarray(before["return"]).mean(1)
    after = np.asarray(run(cfg)["final"]["eval_return"])
    assert before.max() < 3.0, before  # an untrained greedy policy rarely completes a joint catch
    assert after.min() >= 8.0, after  # every seed learned to capture (optimum 20)
