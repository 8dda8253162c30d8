"""Simulators for testing the host path without a real simulator: `Countdown`, a tiny deterministic env whose
JAX twin lives in the tests (host and device loops must store the same bits), and `Faulty`, which wraps any
host env and injects one of the crashes real simulators have (process death, an exception, a hang, an
in-band self-restart, an orphaned child process). Both live in the package: spawned workers import them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxfactor.hostenvs import HostEnvFactory, HostKind
from jaxfactor.hostenvs.protocol import outcome, seen
from jaxfactor.spec import EnvSpec


class Countdown(HostKind):
    """A counter starts at `start` and falls by 1 + (agents choosing action 0) per step; the episode terminates
    at 0 (won). Reward: 0.5 per agent choosing action 1, minus 0.25 per agent choosing 0. Agent 0 cannot
    choose the last action while the counter is odd. Deterministic; the scales are powers of two, so the float32
    values are exact however a compiler rewrites them."""

    def __init__(
        self, num_agents: int = 2, num_actions: int = 3, limit: int = 6, start: int = 8, truncate_at: int | None = None
    ):
        self.n, self.a, self.limit, self.start, self.truncate_at = num_agents, num_actions, limit, start, truncate_at
        self.spec = EnvSpec(
            num_agents=num_agents,
            obs_dim=4,
            state_dim=2,
            num_actions=num_actions,
            episode_limit=limit,
            has_win_flag=True,
        )
        self.count, self.t = start, 0

    @classmethod
    def configure(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], EnvSpec]:
        return dict(params), cls(**params).spec

    @classmethod
    def make(cls, params: Mapping[str, Any], index: int) -> Countdown:
        return cls(**params)

    def _seen(self) -> dict[str, np.ndarray]:
        f = np.float32
        c, t = f(self.count) * f(0.125), f(self.t) * f(0.125)
        obs = np.stack([np.array([c, f(i), t, f(self.count % 2)], f) for i in range(self.n)])
        avail = np.ones((self.n, self.a), bool)
        avail[0, -1] = self.count % 2 == 0
        return seen(self.spec, obs, np.array([c, t], f), avail)

    def reset(self, seed: int, t_env: int) -> dict[str, Any]:
        self.count, self.t = self.start, 0
        return self._seen()

    def step(self, actions: np.ndarray) -> dict[str, Any]:
        actions = np.asarray(actions)
        assert actions.shape == (self.n,) and self._seen()["avail"][np.arange(self.n), actions].all(), actions
        zeros, ones = int((actions == 0).sum()), int((actions == 1).sum())
        self.count, self.t = self.count - 1 - zeros, self.t + 1
        reward = np.float32(0.5) * np.float32(ones) - np.float32(0.25) * np.float32(zeros)
        terminal = self.count <= 0
        truncated = self.truncate_at is not None and self.t >= self.truncate_at
        return {**self._seen(), **outcome(reward, terminal, truncated, won=terminal)}

    def close(self) -> None:
        pass


FAULTS = ("kill", "raise", "hang", "invalid", "nonfinite")


class Faulty:
    """Simulator `target` of `inner` fails at its `at_step`-th step (counted over its whole life): `kill`
    (SIGKILL of its process), `raise`, `hang`, `invalid` (an in-band self-restart, SMAC's `0, True, {}`) or
    `nonfinite` (a NaN observation). With a `once` file, the fault fires once per run (the file records it),
    else every time: a deterministic failure. With `child_pid_file`, every simulator starts a child process
    (a stand-in for SC2_x64) and writes its pid there."""

    def __init__(self, env: Any, fault: str | None, at_step: int, once: str | None):
        self.env, self.spec, self.fault, self.at_step, self.once = env, env.spec, fault, at_step, once
        self.steps, self.child = 0, None

    @staticmethod
    def factory(
        inner: HostEnvFactory,
        fault: str,
        target: int = 0,
        at_step: int = 1,
        once: str | None = None,
        child_pid_file: str | None = None,
    ) -> HostEnvFactory:
        import functools

        assert fault in FAULTS, fault
        builder = functools.partial(
            Faulty.make,
            inner=inner,
            fault=fault,
            target=target,
            at_step=at_step,
            once=once,
            child_pid_file=child_pid_file,
        )
        return HostEnvFactory(kind=f"faulty-{inner.kind}", params=inner.params, spec=inner.spec, builder=builder)

    @staticmethod
    def make(
        params: dict,
        index: int,
        *,
        inner: HostEnvFactory,
        fault: str,
        target: int,
        at_step: int,
        once: str | None,
        child_pid_file: str | None,
    ) -> Faulty:
        env = Faulty(inner.make(index), fault if index == target else None, at_step, once)
        if child_pid_file is not None:
            env.child = subprocess.Popen(["sleep", "600"])
            with open(child_pid_file, "a") as f:
                f.write(f"{env.child.pid}\n")
        return env

    def reset(self, seed: int, t_env: int) -> dict[str, Any]:
        return self.env.reset(seed, t_env)

    def step(self, actions: np.ndarray) -> dict[str, Any]:
        self.steps += 1
        if self.fault is None or self.steps != self.at_step or (self.once and Path(self.once).exists()):
            return self.env.step(actions)
        if self.once:
            Path(self.once).touch()
        if self.fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.fault == "raise":
            raise RuntimeError(f"injected simulator crash at step {self.steps}")
        if self.fault == "hang":
            time.sleep(3600)
        result = self.env.step(actions)
        if self.fault == "nonfinite":
            result["obs"] = np.full_like(result["obs"], np.nan)
            return result
        return {**result, **outcome(0.0, terminal=True, invalid=True)}  # SMAC after full_restart: 0, True, {}

    def close(self) -> None:
        self.env.close()
        if self.child is not None:
            self.child.kill()
            self.child.wait()
