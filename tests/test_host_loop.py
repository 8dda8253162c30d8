"""The host backend (issue 16) ends bit-identical to the device chunk on a numpy twin of a JAX env, with an
in-process pool and with 2 worker processes: buffer, keys and counters equal, parameters within 1e-6."""

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_cfg

from jaxfactor import config as config_lib
from jaxfactor.algos import make_algo
from jaxfactor.algos.components import Carry
from jaxfactor.hostenvs import HostEnvFactory
from jaxfactor.hostenvs.fakes import Countdown
from jaxfactor.runner.anakin import make_chunk
from jaxfactor.runner.host import HostBackend
from jaxfactor.runner.lanes import Setup, init_lanes, seed_sharding
from jaxfactor.runner.learn import over_lanes
from jaxfactor.runner.workers import InlinePool, PoolSettings, ProcessPool
from jaxfactor.structs import Timestep

COUNTDOWN = {"num_agents": 2, "num_actions": 3, "limit": 6, "start": 8}


class JaxCountdown:
    """The JAX twin of `jaxfactor.hostenvs.fakes.Countdown` (same float32 arithmetic)."""

    def __init__(self, num_agents, num_actions, limit, start):
        self.n, self.a, self.limit, self.start = num_agents, num_actions, limit, start
        self.spec = Countdown(**COUNTDOWN).spec

    def _ts(self, count, t, reward, terminal):
        c, tt = count.astype(jnp.float32) * jnp.float32(0.125), t.astype(jnp.float32) * jnp.float32(0.125)
        obs = jnp.stack([jnp.stack([c, jnp.float32(i), tt, (count % 2).astype(jnp.float32)]) for i in range(self.n)])
        avail = jnp.ones((self.n, self.a), bool).at[0, -1].set(count % 2 == 0)
        return Timestep(obs=obs, state=jnp.stack([c, tt]), avail=avail, reward=reward, terminal=terminal, won=terminal)

    def reset(self, key, t_env=None):
        state = (jnp.int32(self.start), jnp.int32(0))
        return state, self._ts(*state, jnp.float32(0), jnp.array(False))

    def step(self, key, state, actions):
        zeros, ones = jnp.sum(actions == 0), jnp.sum(actions == 1)
        count, t = state[0] - 1 - zeros, state[1] + 1
        reward = jnp.float32(0.5) * ones.astype(jnp.float32) - jnp.float32(0.25) * zeros.astype(jnp.float32)
        return (count, t), self._ts(count, t, reward, count <= 0)


def key_data(tree):
    return jax.tree.map(
        lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x, tree
    )


@pytest.fixture(scope="module")
def countdown_setup():
    cfg = make_cfg(
        "algo=qmix",
        "env=matrix_m3",
        "num_seeds=2",
        "algo.num_envs=3",
        "algo.batch_size=6",
        "algo.buffer_size=12",
        "algo.target_update_episodes=6",
        "algo.agent_hidden_dim=16",
        "algo.mixing_embed_dim=8",
        "algo.hypernet_embed_dim=16",
        "algo.eps_start=0.6",
        "algo.eps_finish=0.6",
    )
    spec = Countdown(**COUNTDOWN).spec
    algo = make_algo(cfg.algo, spec, cfg.env.agent_inputs)
    plan = config_lib.plan(cfg, spec.episode_limit)
    factory = HostEnvFactory("countdown", dict(COUNTDOWN), spec, Countdown.make)
    device, metrics = jax.jit(over_lanes(make_chunk(algo, JaxCountdown(**COUNTDOWN), 3, 6, 4)))(init_lanes(cfg, algo))
    return cfg, algo, Setup(cfg, factory, algo, plan, seed_sharding(cfg)), device, jax.device_get(metrics)


# The inline pool is the extended tier here (it has its own tests in test_host_workers): the process pool adds the
# worker processes and their pipes to the same comparison.
@pytest.mark.parametrize("pool", [pytest.param("inline", marks=pytest.mark.extended), "2 processes"])
def test_the_host_loop_ends_bit_identical_to_the_device_chunk(countdown_setup, pool):
    cfg, algo, setup, device, device_metrics = countdown_setup
    assert (device_metrics["train/learning"][:, 1:] == 1).all()
    stored = np.asarray(device.buffer.data.filled).sum(-1) - 1  # real transitions per stored episode
    assert stored.min() < 6 and stored.max() == 6  # terminations before the limit and episodes cut at it
    pools = {
        "inline": lambda: InlinePool(setup.env, 6),
        "2 processes": lambda: ProcessPool(setup.env, 6, num_workers=2, settings=PoolSettings()),
    }
    with pools[pool]() as p:
        backend = HostBackend(setup, pool=p)
        runner = init_lanes(cfg, algo)
        backend.compile(runner)
        for _ in range(4):
            runner, metrics = backend.update(runner)
    for name in ("buffer", "key"):
        for a, b in zip(
            jax.tree.leaves(key_data(getattr(runner, name))), jax.tree.leaves(key_data(getattr(device, name)))
        ):
            np.testing.assert_array_equal(a, b, err_msg=name)
    for counter in ("t_env", "episodes", "episodes_since_target", "num_updates"):
        np.testing.assert_array_equal(getattr(runner.learner, counter), getattr(device.learner, counter))
    assert int(device.learner.num_updates.min()) == 3
    for a, b in zip(jax.tree.leaves(runner.learner.params), jax.tree.leaves(device.learner.params)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert metrics["host/discarded"].sum() == 0 and backend.collector.early_stops > 0  # padded slots compared too


def test_greedy_evaluation_re_runs_crashed_episodes(countdown_setup, tmp_path):
    from jaxfactor.hostenvs.fakes import Faulty
    from jaxfactor.runner.lanes import seed_keys

    cfg, algo, setup, device, _ = countdown_setup
    faulty = Faulty.factory(setup.env, "raise", target=4, at_step=2, once=str(tmp_path / "fired"))
    with InlinePool(faulty, 6) as p:
        backend = HostBackend(setup, pool=p)
        stats = backend.evaluate_params(device.learner.params, device.learner.t_env, seed_keys(cfg, 7), need=5)
        assert p.stats.discarded_episodes == 1 and p.stats.crashes == 1
    assert set(stats) == {"eval/return", "eval/win_rate", "eval/length"} and stats["eval/return"].shape == (2,)
    # the greedy policy's episodes are deterministic: every one of a lane is kept and averaged, none dropped
    assert np.isfinite(stats["eval/return"]).all() and (stats["eval/length"] >= 1).all()


@pytest.mark.parametrize("start", [3, 8])  # every episode ends before the limit / some run to it
def test_the_early_stopping_rollout_stores_exactly_what_stepping_every_slot_stores(countdown_setup, start):
    from conftest import exploring

    from jaxfactor.runner.rollout import rollout

    _, algo, _, device, _ = countdown_setup
    env = JaxCountdown(**{**COUNTDOWN, "start": start})
    behaviour = exploring(jax.tree.map(lambda x: x[0], device.learner.params), 0.6)
    early = jax.jit(lambda k: rollout(algo, env, behaviour, k, 16, greedy=False))
    every_slot = jax.jit(lambda k: rollout(algo, env, behaviour, k, 16, greedy=False, record=True)[:2])
    for seed in range(3):
        (got, got_stats), (want, want_stats) = early(jax.random.key(seed)), every_slot(jax.random.key(seed))
        for a, b in zip(jax.tree.leaves((got, got_stats)), jax.tree.leaves((want, want_stats))):
            np.testing.assert_array_equal(a, b)
        lengths = np.asarray(want_stats["length"])
        assert lengths.max() < 6 if start == 3 else lengths.max() == 6  # stopped before the limit slot, or not
        assert (np.asarray(want.actions)[~np.asarray(want.filled)] == 0).all()  # padding holds action 0


ALGO_YAMLS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs" / "algo").glob("[!_]*.yaml"))
# Three loss families in CI (QMIX's factorised TD stage, S2Q's sub-values, ME-IGM's three stages); POW's recogniser
# and nmix's RND stage ride the same factorised stage and are the extended tier with the rest (~40 s each in CI).
IN_CI = ("qmix", "s2q", "me_qmix")


def countdown_batch(name: str, start: int = 3):
    """(algo, learner lanes [2], a sampled batch [2, 8, 7 slots]) of `name` on countdown episodes from `start`."""
    from jaxfactor import buffers
    from jaxfactor.runner.rollout import rollout

    cfg = make_cfg(
        f"algo={name}",
        "env=matrix_m3",
        "num_seeds=2",
        "algo.num_envs=8",
        "algo.batch_size=8",
        "algo.buffer_size=16",
        "algo.agent_hidden_dim=16",
        "algo.mixing_embed_dim=8",
        "algo.hypernet_embed_dim=16",
        "algo.eps_start=0.6",
        "algo.eps_finish=0.6",
    )
    algo = make_algo(cfg.algo, Countdown(**COUNTDOWN).spec, cfg.env.agent_inputs)
    env = JaxCountdown(**{**COUNTDOWN, "start": start})

    def fill(runner):
        episodes, _ = rollout(algo, env, algo.behaviour(runner.learner), runner.key, 8, greedy=False)
        buffer = buffers.add(runner.buffer, episodes, jnp.ones((8,), bool))
        return buffers.sample(buffer, jax.random.fold_in(runner.key, 1), 8)

    runner = init_lanes(cfg, algo)
    # Targets a little off the online networks: at a copy, comparisons of one network's two evaluations (S2Q's
    # Q-hat-star(u_t) >= Q-hat-star(greedy)) are exact ties that float rounding alone decides.
    leaves, tree = jax.tree.flatten(runner.learner.target_params)
    noise = [0.01 * jax.random.normal(jax.random.key(i), x.shape) for i, x in enumerate(leaves)]
    learner = runner.learner.replace(target_params=jax.tree.unflatten(tree, [x + n for x, n in zip(leaves, noise)]))
    return algo, learner, jax.jit(jax.vmap(fill))(runner)


def stage_gradients(algo, learner, batch, key):
    """{stage: (loss, gradients)} of every stage's loss at the learner's parameters, carries prepared as
    `Algorithm.update` prepares them (one lane)."""
    params, carry, out = learner.params, Carry(t_env=learner.t_env, stats=learner.stats), {}
    for stage_key, stage in zip(jax.random.split(key, len(algo.stages)), algo.stages):
        if stage.prepare is not None:
            carry = stage.prepare(params, learner.target_params, batch, learner.hp, carry)

        def objective(own, stage=stage, stage_key=stage_key, carry=carry):
            return stage.loss({**params, **own}, learner.target_params, batch, learner.hp, stage_key, carry)[0]

        out[stage.name] = jax.value_and_grad(objective)({g: params[g] for g in stage.owns})
    return out


@pytest.mark.parametrize("name", [n if n in IN_CI else pytest.param(n, marks=pytest.mark.extended) for n in ALGO_YAMLS])
def test_learning_on_the_batch_cut_to_its_longest_episode_equals_the_padded_update(name):
    # Countdown episodes of 1..3 real steps in 7 slots: cut to 4 slots, only padding is dropped. Losses and
    # gradients are compared (Adam's first step turns a near-zero gradient's rounding into a whole step).
    algo, learner, batch = countdown_batch(name)
    filled = np.asarray(batch.filled).sum(-1)
    assert filled.max() == 4 and filled.min() < 4
    keys = jax.random.split(jax.random.key(2), 2)
    grads = jax.jit(jax.vmap(functools.partial(stage_gradients, algo)))
    padded, cut = grads(learner, batch, keys), grads(learner, jax.tree.map(lambda x: x[:, :, :4], batch), keys)
    for a, b in zip(jax.tree.leaves(padded), jax.tree.leaves(cut)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert all(np.abs(leaf).max() > 0 for leaf in jax.tree.leaves({k: g for k, (_, g) in cut.items()})[:1])


def test_the_update_runs_at_the_shortest_compiled_length_holding_every_lanes_longest_episode():
    import types

    from jaxfactor.runner.learn import bucket_lengths, update_on_real_slots

    assert (
        bucket_lengths(101, 4) == (26, 51, 76, 101) and bucket_lengths(2, 4) == (2,) and bucket_lengths(7, 2) == (4, 7)
    )
    algo, learner, batch = countdown_batch("qmix")
    compiled, ran = [], []

    def update(learner, batch, key):
        slots = batch.filled.shape[-1]
        compiled.append(slots)  # at trace time
        jax.debug.callback(lambda: ran.append(slots))
        return algo.update(learner, batch, key)

    keys = jax.random.split(jax.random.key(2), 2)
    fn = jax.jit(
        over_lanes(lambda lr, b, k: update_on_real_slots(types.SimpleNamespace(update=update), lr, b, k, 2, "lanes"))
    )
    fn(learner, batch, keys)
    jax.effects_barrier()
    assert sorted(compiled) == [4, 7] and ran == [4]
    ran.clear()
    fn(learner, batch.replace(filled=batch.filled.at[1, 0].set(True)), keys)  # lane 1 now holds a 7-slot episode
    jax.effects_barrier()
    assert ran == [7]  # one length for every lane: the longest lane's


def test_a_lane_that_has_spent_its_env_step_budget_stays_frozen(countdown_setup):
    # Countdown episodes last 3..6 steps, so lanes reach a 40-step budget at different updates.
    cfg, algo, *_ = countdown_setup
    env, budget = JaxCountdown(**COUNTDOWN), 40

    def train(updates):
        chunk = make_chunk(algo, env, 3, 6, updates, budget=budget)
        return jax.device_get(jax.jit(over_lanes(chunk))(init_lanes(cfg, algo)))

    (short, _), (long, metrics) = train(8), train(12)
    steps, learning = np.asarray(metrics["env_steps"]), np.asarray(metrics["train/learning"])
    for lane in range(2):
        crossed = int(np.argmax(steps[lane] >= budget))
        assert budget <= steps[lane, crossed] < budget + 3 * 6 and crossed < 7
        assert (steps[lane, crossed:] == steps[lane, crossed]).all() and (learning[lane, crossed + 1 :] == 0).all()
        assert np.isnan(metrics["rollout/return"][lane, crossed + 1 :]).all()  # nothing collected is kept
    for a, b in zip(jax.tree.leaves(key_data(short)), jax.tree.leaves(key_data(long))):
        np.testing.assert_array_equal(a, b)  # four more updates changed nothing
