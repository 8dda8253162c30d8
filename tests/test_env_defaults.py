"""Algorithm settings that depend on the env take the env's value unless the user sets them (issue 18): POW's
tolerance and warm-up on matrix games, predator-prey and SMAC, the predator-prey epsilon schedule; settings that
leave a component inert over the run's budget are warned about in one line."""

import pytest
from conftest import make_cfg

from jaxfactor import validation

# (algo, env): (pow_tolerance, pow_warmup_steps, eps_anneal_steps), cited in the env presets
EXPECTED = {
    ("pow_qmix", "matrix_m3"): (0.05, 0, 500_000),  # POW paper: matrix 0.05 (ALGORITHMS.md §14.6)
    ("pow_qmix", "predator_prey_p3"): (1.0, 100_000, 500_000),  # §14.5: tolerance 1, eps over 500k
    ("pow_vdn", "smax_3m"): (0.05, 100_000, 500_000),  # SMAC's 0.05 (§14.6)
    ("pow_qplex", "highway_intersection"): (0.1, 100_000, 500_000),  # intersection 0.1 (§14.6)
    ("pow_qmix", "predator_prey_small"): (1.0, 100_000, 500_000),  # POW's own 500k (§6.9) off POW's grids
    ("qmix", "predator_prey_p4"): (None, None, 500_000),  # every method on POW's grids (§14.5)
    ("qmix", "predator_prey_p0"): (None, None, 100_000),  # PyMARL2's profile (PP0's sanity check)
    ("qmix", "matrix_m1"): (None, None, 100_000),
}


@pytest.mark.parametrize("algo,env", sorted(EXPECTED))
def test_env_appropriate_defaults(algo, env):
    cfg = make_cfg(f"algo={algo}", f"env={env}")
    got = (cfg.algo.extra.get("pow_tolerance"), cfg.algo.extra.get("pow_warmup_steps"), cfg.algo.eps_anneal_steps)
    assert got == EXPECTED[(algo, env)]


def test_what_the_user_sets_wins_over_the_envs_default():
    cfg = make_cfg(
        "algo=pow_qmix",
        "env=matrix_m3",
        "algo.pow_tolerance=0.3",
        "algo.pow_warmup_steps=10",
        "algo.eps_anneal_steps=777",
    )
    assert (cfg.algo.extra["pow_tolerance"], cfg.algo.extra["pow_warmup_steps"], cfg.algo.eps_anneal_steps) == (
        0.3,
        10,
        777,
    )


def test_a_warm_up_longer_than_the_run_is_warned_in_one_line():
    cfg = make_cfg("algo=pow_qmix", "env=predator_prey_small", "total_timesteps=50000")
    assert validation.inert_settings(cfg) == [
        "algo.pow_warmup_steps=100000 >= total_timesteps=50000: POW's weighting never switches on (the run trains "
        "its unweighted mixer); lower algo.pow_warmup_steps"
    ]
    assert validation.inert_settings(make_cfg("algo=qmix", "env=matrix_m0")) == []  # the default job: nothing
    assert (
        validation.inert_settings(make_cfg("algo=pow_qmix", "env=matrix_m3", "algo.eps_start=1", "algo.eps_finish=1"))
        == []
    )  # at M3's defaults POW weights at once


def test_settings_the_segment_layout_makes_inert_are_warned_in_one_line_each():
    cfg = make_cfg("algo=qmix", "env=smax_3m", "runner.layout=segments", "algo.learning_starts=3000000")
    assert validation.inert_settings(cfg) == [
        "algo.learning_starts=3000000 >= total_timesteps=2000000: the run never learns; lower algo.learning_starts",
        "algo.length_buckets=4 does nothing with runner.layout=segments (every slot of a segment holds an env step, "
        "there is no padding to cut); set 1",
    ]
    assert validation.inert_settings(make_cfg("env=smax_3m", "runner.segment_length=64")) == [
        "runner.segment_length=64 does nothing with runner.layout=episodes; set runner.layout=segments to store "
        "segments"
    ]
    assert validation.inert_settings(make_cfg("experiment=jaxmarl_qmix_smax_3m")) == []


def test_replay_stores_integer_observations_compactly_and_learners_read_float32():
    import dataclasses

    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxfactor import buffers
    from jaxfactor.envs import make_env

    cfg = make_cfg("env=predator_prey_small")
    spec = make_env(cfg.env.kind, cfg.env.params).spec
    assert spec.obs_dtype == "uint8"
    assert buffers.estimate_bytes(spec, 1) * 3.5 < buffers.estimate_bytes(
        dataclasses.replace(spec, obs_dtype="float32"), 1
    )
    buf = buffers.init(spec, 4)
    shapes = buffers.episode_shapes(spec)
    episodes = jax.tree.map(
        lambda s: jnp.ones((2,) + s.shape, jnp.float32 if s.dtype == jnp.uint8 else s.dtype), shapes
    )
    buf = buffers.add(buf, episodes)
    assert buf.data.obs.dtype == jnp.uint8 and buf.data.state.dtype == jnp.uint8
    batch = buffers.sample(buf, jax.random.key(0), 2)
    assert batch.obs.dtype == jnp.float32 and batch.state.dtype == jnp.float32 and float(batch.obs.min()) == 1.0
    assert np.asarray(batch.actions).dtype == np.int32


@pytest.mark.slow
def test_overcooked_starts_and_trains_a_tiny_budget_at_its_defaults(tmp_path):
    from jaxfactor.runner.loop import run

    cfg = make_cfg(
        "algo=qmix",
        "env=overcooked_cramped_room",
        "num_seeds=2",
        "total_timesteps=3200",
        "log_every_steps=3200",
        "env.test_episodes=2",
        run_dir=str(tmp_path / "run"),
    )
    assert cfg.algo.buffer_size == 1000 and cfg.algo.num_envs == 8 and cfg.algo.batch_size == 128
    result = run(cfg)
    assert result["env_steps"] >= 3200 and len(result["final"]["eval_return"]) == 2
