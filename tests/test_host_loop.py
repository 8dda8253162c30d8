"""The host backend (issue 16) ends bit-identical to the device chunk on a numpy twin of a JAX env, with an
in-process pool and with 2 worker processes: buffer, keys and counters equal, parameters within 1e-6."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_cfg

from jaxfactor import config as config_lib
from jaxfactor.algos import make_algo
from jaxfactor.hostenvs import HostEnvFactory
from jaxfactor.hostenvs.fakes import Countdown
from jaxfactor.runner.anakin import make_chunk
from jaxfactor.runner.host import HostBackend
from jaxfactor.runner.lanes import Setup, init_lanes, seed_sharding
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
        return Timestep(obs=obs, state=jnp.stack([c, tt]), avail=avail, reward=reward, terminal=terminal,
                        won=terminal)

    def reset(self, key, t_env=None):
        state = (jnp.int32(self.start), jnp.int32(0))
        return state, self._ts(*state, jnp.float32(0), jnp.array(False))

    def step(self, key, state, actions):
        zeros, ones = jnp.sum(actions == 0), jnp.sum(actions == 1)
        count, t = state[0] - 1 - zeros, state[1] + 1
        reward = jnp.float32(0.5) * ones.astype(jnp.float32) - jnp.float32(0.25) * zeros.astype(jnp.float32)
        return (count, t), self._ts(count, t, reward, count <= 0)


def key_data(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
                        tree)


@pytest.fixture(scope="module")
def countdown_setup():
    cfg = make_cfg("algo=qmix", "env=matrix_m3", "num_seeds=2", "algo.num_envs=3", "algo.batch_size=6",
                   "algo.buffer_size=12", "algo.target_update_episodes=6", "algo.agent_hidden_dim=16",
                   "algo.mixing_embed_dim=8", "algo.hypernet_embed_dim=16", "algo.eps_start=0.6",
                   "algo.eps_finish=0.6")
    spec = Countdown(**COUNTDOWN).spec
    algo = make_algo(cfg.algo, cfg.env, spec)
    plan = config_lib.plan(cfg, spec.episode_limit)
    factory = HostEnvFactory("countdown", dict(COUNTDOWN), spec, Countdown.make)
    device, metrics = jax.jit(jax.vmap(make_chunk(algo, JaxCountdown(**COUNTDOWN), 3, 6, 4)))(init_lanes(cfg, algo))
    return cfg, algo, Setup(cfg, factory, algo, plan, seed_sharding(cfg)), device, jax.device_get(metrics)


@pytest.mark.parametrize("pool", ["inline", "2 processes"])
def test_the_host_loop_ends_bit_identical_to_the_device_chunk(countdown_setup, pool):
    cfg, algo, setup, device, device_metrics = countdown_setup
    assert (device_metrics["train/learning"][:, 1:] == 1).all()
    stored = np.asarray(device.buffer.data.filled).sum(-1) - 1  # real transitions per stored episode
    assert stored.min() < 6 and stored.max() == 6  # terminations before the limit and episodes cut at it
    pools = {"inline": lambda: InlinePool(setup.env, 6),
             "2 processes": lambda: ProcessPool(setup.env, 6, num_workers=2, settings=PoolSettings())}
    with pools[pool]() as p:
        backend = HostBackend(setup, pool=p)
        runner = init_lanes(cfg, algo)
        backend.compile(runner)
        for _ in range(4):
            runner, metrics = backend.update(runner)
    for name in ("buffer", "key"):
        for a, b in zip(jax.tree.leaves(key_data(getattr(runner, name))), jax.tree.leaves(key_data(getattr(device, name)))):
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
