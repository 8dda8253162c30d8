"""Crash tolerance of the host simulator pool (issue 16): a simulator SIGKILLed mid-episode, one raising, one
hanging past its deadline and one restarting itself in band each cost only their episode (the worker is
restarted or the episode flagged), the pool counts it and goes on; a deterministic failure stops after
max_consecutive_failures with the simulator's traceback; killing a worker's process group leaves no child."""

import os
import time

import numpy as np
import pytest

from jaxfactor.hostenvs import HostEnvFactory
from jaxfactor.hostenvs.fakes import Countdown, Faulty
from jaxfactor.runner.workers import Failure, InlinePool, PoolSettings, ProcessPool, SimulatorFailed

COUNTDOWN = HostEnvFactory("countdown", {"limit": 6, "start": 8}, Countdown(limit=6, start=8).spec, Countdown.make)
FAST = PoolSettings(start_timeout_s=60, reset_timeout_s=10, step_timeout_s=2, max_consecutive_failures=3)


def episode(pool, num_envs: int) -> tuple[np.ndarray, dict]:
    """One episode in every env with actions 2 (never terminates: runs to the limit); (valid [E], reasons)."""
    valid, reasons = np.ones(num_envs, bool), {}
    for i, r in pool.reset(np.arange(num_envs), np.zeros(num_envs, int)).items():
        if isinstance(r, Failure):
            valid[i], reasons[i] = False, r.reason
    for _ in range(6):
        running = {i: np.array([1, 2]) for i in np.flatnonzero(valid)}
        for i, r in pool.step(running).items():
            if isinstance(r, Failure) or r["invalid"]:
                valid[i], reasons[i] = False, r.reason if isinstance(r, Failure) else "invalid"
    for i in range(num_envs):
        pool.episode_done(i, bool(valid[i]), reasons.get(i) == "invalid")
    return valid, reasons


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its parent is gone too
        return f.read().split()[2] != "Z"


@pytest.mark.parametrize(
    "fault,reason",
    [("kill", "died"), ("raise", "raised"), ("hang", "hung"), ("invalid", "invalid"), ("nonfinite", "raised")],
)
def test_a_failing_simulator_costs_its_episode_and_the_pool_goes_on(tmp_path, fault, reason):
    factory = Faulty.factory(COUNTDOWN, fault, target=1, at_step=3, once=str(tmp_path / "fired"))
    with ProcessPool(factory, 4, num_workers=4, settings=FAST) as pool:
        pids = pool.pids()
        valid, reasons = episode(pool, 4)
        assert valid.tolist() == [True, False, True, True] and reasons == {1: reason}
        restarted = fault in ("kill", "hang")
        assert pool.stats.restarts == int(restarted) and (pool.pids()[1] != pids[1]) == restarted
        assert pool.stats.discarded_episodes == 1
        assert pool.stats.invalid_episodes == int(fault == "invalid") and pool.stats.crashes == int(fault != "invalid")
        assert episode(pool, 4)[0].all()  # the next episode of every simulator is whole


def test_two_envs_sharing_a_worker_lose_their_episodes_together_when_it_dies(tmp_path):
    factory = Faulty.factory(COUNTDOWN, "kill", target=0, at_step=2, once=str(tmp_path / "fired"))
    with ProcessPool(factory, 4, num_workers=2, settings=FAST) as pool:
        valid, reasons = episode(pool, 4)
        assert valid.tolist() == [False, True, False, True] and pool.stats.restarts == 1  # env 2 is on worker 0
        assert episode(pool, 4)[0].all()


def test_a_deterministic_failure_stops_after_max_consecutive_failures_with_the_traceback():
    factory = Faulty.factory(COUNTDOWN, "raise", target=0, at_step=1)  # no `once`: every episode fails
    with InlinePool(factory, 2, FAST) as pool:
        episode(pool, 2)
        episode(pool, 2)
        with pytest.raises(
            SimulatorFailed,
            match=r"(?s)simulator 0 \(faulty-countdown\) failed 3 episodes in a row.*"
            r"RuntimeError: injected simulator crash",
        ):
            episode(pool, 2)


def test_an_illegal_action_is_a_deterministic_failure_not_a_restart_loop():
    with ProcessPool(COUNTDOWN, 1, num_workers=1, settings=FAST) as pool:
        with pytest.raises(SimulatorFailed, match="AssertionError"):
            for _ in range(3):
                pool.reset(np.zeros(1), np.zeros(1))
                assert not isinstance(pool.step({0: np.array([1, 1])})[0], Failure)  # the counter falls to 7
                assert isinstance(pool.step({0: np.array([2, 1])})[0], Failure)  # agent 0 may not take 2 then
                pool.episode_done(0, False)
        assert pool.stats.restarts == 0  # a raising simulator is rebuilt inside its worker


def test_a_first_reset_that_fails_is_fatal_at_once(tmp_path):
    bad = HostEnvFactory("countdown", {"limit": 6, "start": 8, "no_such_key": 1}, COUNTDOWN.spec, Countdown.make)
    with ProcessPool(bad, 1, num_workers=1, settings=FAST) as pool:
        with pytest.raises(SimulatorFailed, match="(?s)its first reset.*TypeError"):
            pool.reset(np.zeros(1), np.zeros(1))


def test_killing_a_worker_removes_its_simulators_child_processes(tmp_path):
    pid_file = tmp_path / "children"
    factory = Faulty.factory(
        COUNTDOWN, "hang", target=0, at_step=2, once=str(tmp_path / "fired"), child_pid_file=str(pid_file)
    )
    pool = ProcessPool(factory, 2, num_workers=2, settings=FAST)
    try:
        episode(pool, 2)  # env 0 hangs: its worker's group is killed, the stand-in for SC2_x64 with it
        first = [int(x) for x in pid_file.read_text().split()]
        deadline = time.monotonic() + 10
        while sum(map(alive, first)) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pool.stats.restarts == 1 and len(first) == 2 and sum(map(alive, first)) == 1
        assert episode(pool, 2)[0].all()  # the respawned worker built a new simulator (and child)
    finally:
        workers = pool.pids()
        pool.close()
    children = [int(x) for x in pid_file.read_text().split()]
    deadline = time.monotonic() + 10
    while any(alive(p) for p in children + workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(children) == 3 and not [p for p in children + workers if alive(p)]
