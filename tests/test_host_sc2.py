"""StarCraft II through the host path (issue 16): the fake's sizes equal SMAC's formulas on every listed map
(and the printed sizes of the S2Q paper's tables), availability and time-limit semantics, the in-band restart
as an invalid episode, the one-line error without SC2, a crash mid-run counted in summary.json, and
`algo=s2q env=sc2_6h_vs_8z env.simulator=fake` through the CLI."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import COMPILE_FAST_XLA_FLAGS, TINY_HOST_RUN, make_cfg

from jaxfactor.errors import ConfigError
from jaxfactor.hostenvs import make_host_env
from jaxfactor.hostenvs.fakes import Faulty
from jaxfactor.hostenvs.protocol import check_timestep
from jaxfactor.hostenvs.smac import SMAC_MAPS, FakeStarCraft2Env, real_sc2_missing

# (obs, state, actions): SMAC's get_obs_size / get_state_size with default flags (oxwhirl/smac starcraft2.py);
# the 5m_vs_6m ... 3s_vs_5z rows and SMACv2 5v5 are printed in the S2Q paper's Tables E.1, E.4 and E.5.
SMAC_SIZES = {
    "3m": (30, 48, 9),
    "8m": (80, 168, 14),
    "2s3z": (80, 120, 11),
    "3s5z": (128, 216, 14),
    "5m_vs_6m": (55, 98, 12),
    "3s_vs_5z": (48, 68, 11),
    "MMM2": (176, 322, 18),
    "corridor": (156, 282, 30),
    "6h_vs_8z": (78, 140, 14),
    "27m_vs_30m": (285, 1170, 36),
    "3s5z_vs_3s6z": (136, 230, 15),
}
SMACV2_SIZES = {
    ("protoss", 5): (92, 130, 11),
    ("terran", 5): (82, 120, 11),
    ("zerg", 5): (82, 120, 11),
    ("protoss", 10): (182, 310, 16),
    ("terran", 10): (162, 290, 16),
    ("zerg", 10): (162, 290, 16),
}
LIMITS = {
    "3m": 60,
    "8m": 120,
    "2s3z": 120,
    "3s5z": 150,
    "5m_vs_6m": 70,
    "3s_vs_5z": 250,
    "MMM2": 180,
    "corridor": 400,
    "6h_vs_8z": 150,
    "27m_vs_30m": 180,
    "3s5z_vs_3s6z": 170,
}


@pytest.mark.parametrize("name", sorted(SMAC_SIZES))
def test_every_listed_map_has_smacs_sizes_in_the_fake_and_its_preset(name):
    cfg = make_cfg(f"env=sc2_{name}", "env.simulator=fake")
    spec = make_host_env(cfg.env.kind, cfg.env.params).spec
    assert (spec.obs_dim, spec.state_dim, spec.num_actions) == SMAC_SIZES[name]
    assert spec.episode_limit == LIMITS[name] and spec.num_agents == SMAC_MAPS[name].n_agents
    fake = FakeStarCraft2Env(SMAC_MAPS[name], seed=3)
    obs, state = fake.reset()
    assert [o.shape for o in obs] == [(spec.obs_dim,)] * spec.num_agents and state.shape == (spec.state_dim,)
    info = fake.get_env_info()
    assert (info["obs_shape"], info["state_shape"], info["n_actions"]) == SMAC_SIZES[name]


@pytest.mark.parametrize("race,n", sorted(SMACV2_SIZES))
def test_smacv2_settings_have_smacv2s_sizes(race, n):
    spec = make_host_env("smacv2", {"race": race, "n_units": n, "n_enemies": n, "simulator": "fake"}).spec
    assert (spec.obs_dim, spec.state_dim, spec.num_actions) == SMACV2_SIZES[(race, n)] and spec.episode_limit == 200
    env = make_host_env("smacv2", {"race": race, "n_units": n, "n_enemies": n, "simulator": "fake"}).make(0)
    assert env.reset(1, 0)["obs"].shape == (n, SMACV2_SIZES[(race, n)][0])


def test_availability_dead_agents_illegal_actions_and_the_time_limit():
    fake = FakeStarCraft2Env(SMAC_MAPS["3m"], seed=0)
    fake.reset()
    fake.ally_health[1] = 0.0
    avail = np.array(fake.get_avail_actions())
    assert avail[1].tolist() == [1] + [0] * 8  # dead: no-op only
    assert avail[0, 0] == 0 and avail[0, 1] == 1  # alive: never no-op, stop always
    with pytest.raises(AssertionError, match="Agent 1 cannot perform action 1"):
        fake.step([1, 1, 1])
    for timeout_is_terminal in (False, True):
        env = make_host_env(
            "smac", {"map_name": "3m", "simulator": "fake", "timeout_is_terminal": timeout_is_terminal}
        ).make(0)
        ts = env.reset(5, 0)
        env.env.shoot = -1.0  # nobody can hit anybody: the battle runs into SMAC's limit
        for t in range(60):
            ts = env.step(np.ones(3, np.int32))  # stop
            assert (ts["terminal"] or ts["truncated"]) == (t == 59)
        assert ts["truncated"] != timeout_is_terminal and ts["terminal"] == timeout_is_terminal and not ts["won"]


def test_smacs_in_band_restart_is_an_invalid_episode_never_a_terminal():
    env = make_host_env("smac", {"map_name": "3m", "simulator": "fake", "fake_restart_prob": 1.0}).make(0)
    env.reset(0, 0)
    ts = env.step(np.ones(3, np.int32))
    assert ts["invalid"] and env.env.force_restarts == 1


def test_the_real_simulator_without_sc2_is_a_one_line_error_naming_the_fake():
    from jaxfactor.train import validate_argv

    with pytest.raises(ConfigError, match=r"^env.simulator=real needs StarCraft II.*use env.simulator=fake") as e:
        validate_argv(["algo=qmix", "env=sc2_3m"])
    assert "\n" not in str(e.value)
    for bad, field in (
        ("env.map_name=4m", "env.map_name"),
        ("host.workers=0", "host.workers"),
        ("host.step_timeout_s=0", "host.step_timeout_s"),
        ("host.pool=threads", "host.pool"),
    ):
        with pytest.raises(ConfigError, match=field):
            validate_argv(["env=sc2_3m", "env.simulator=fake", bad])


FAKE_3M_RUN = (
    "algo=qmix",
    "env=sc2_3m",
    "env.simulator=fake",
    "num_seeds=2",
    "total_timesteps=400",
    "log_every_steps=200",
    *TINY_HOST_RUN,
    "host.workers=4",
)


def test_a_simulator_killed_mid_run_costs_an_episode_and_summary_json_counts_it(tmp_path):
    from jaxfactor.runner.host import HostBackend
    from jaxfactor.runner.loop import run

    cfg = make_cfg(*FAKE_3M_RUN, run_dir=str(tmp_path / "run"))

    def faulty_backend(s, on_trace):
        killed = Faulty.factory(s.env, "kill", target=1, at_step=4, once=str(tmp_path / "fired"))
        return HostBackend(dataclasses.replace(s, env=killed), on_trace)

    result = run(cfg, backend=faulty_backend)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["host"]["crashes"] == 1 and summary["host"]["restarts"] == 1
    assert summary["host"]["discarded_episodes"] == 1 and result["env_steps"] >= 400
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(sum(m["per_seed"]["host/discarded"]) for m in metrics if "per_seed" in m) > 0


def test_a_simulator_failing_every_episode_stops_the_run_with_its_traceback_and_leaves_no_worker(tmp_path):
    from jaxfactor.runner.host import HostBackend
    from jaxfactor.runner.loop import run
    from jaxfactor.runner.workers import SimulatorFailed

    cfg = make_cfg(*FAKE_3M_RUN, run_dir=str(tmp_path / "run"))
    pools = []

    def failing_backend(s, on_trace):
        backend = HostBackend(dataclasses.replace(s, env=Faulty.factory(s.env, "raise", target=2, at_step=1)), on_trace)
        pools.append(backend.pool)
        return backend

    with pytest.raises(SimulatorFailed, match=r"(?s)simulator 2 .* failed 3 episodes in a row.*injected simulator"):
        run(cfg, backend=failing_backend)
    assert pools and all(p is None for p in pools[0]._procs)  # the pool was closed: no worker left


def test_s2q_trains_a_tiny_budget_on_the_fake_6h_vs_8z_through_the_cli(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": COMPILE_FAST_XLA_FLAGS}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxfactor.train",
            "algo=s2q",
            "env=sc2_6h_vs_8z",
            "env.simulator=fake",
            "num_seeds=1",
            "total_timesteps=150",
            "log_every_steps=150",
            "algo.num_envs=2",
            "algo.batch_size=2",
            "algo.buffer_size=4",
            "algo.agent_hidden_dim=16",
            "algo.mixing_embed_dim=8",
            "algo.hypernet_embed_dim=16",
            "env.test_episodes=2",
            "algo.length_buckets=1",
            "progress=false",
            f"run_dir={tmp_path}/run",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["algo"] == "s2q" and summary["env_steps"] >= 150 and summary["host"]["workers"] >= 1
    assert np.isfinite(summary["final"]["eval_return_mean"])
    assert "host simulators: 0 crashes" in out.stdout


@pytest.mark.sc2
@pytest.mark.skipif(
    real_sc2_missing("smac") is not None,
    reason=f"real StarCraft II is not available here: {real_sc2_missing('smac')} (README, 'StarCraft II')",
)
def test_real_sc2_keeps_the_contract_with_smacs_sizes():
    factory = make_host_env("smac", {"map_name": "3m"})
    env = factory.make(0)
    try:
        ts = env.reset(0, 0)
        check_timestep(factory.spec, ts, stepped=False)
        assert env.env.get_env_info()["obs_shape"] == SMAC_SIZES["3m"][0]
        for _ in range(10):
            actions = [int(np.flatnonzero(a)[0]) for a in ts["avail"]]
            ts = env.step(np.array(actions))
            check_timestep(factory.spec, ts, stepped=True)
            if ts["terminal"] or ts["truncated"]:
                break
    finally:
        env.close()


def test_host_settings_for_a_jax_env_are_refused_in_one_line():
    from jaxfactor.train import validate_argv

    with pytest.raises(ConfigError, match=r"^host.workers=3 applies to host simulators only, but env.kind=matrix"):
        validate_argv(["env=matrix_m3", "host.workers=3"])
