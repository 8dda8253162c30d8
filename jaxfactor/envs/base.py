"""The JaxEnv protocol and the kind registry.

An env is pure: `reset(key, t_env=None) -> (env_state, Timestep)` and `step(key, env_state,
actions [N]) -> (env_state, Timestep)`, jittable and vmappable; it never auto-resets (the runner owns
episode boundaries, PyMARL2-style episodic collection). `t_env` is the learner's env-step count at the
start of the episode: non-stationary envs (a payoff that shifts mid-training) read it, others ignore it.
Adapters are classes registered under an explicit `kind` (no name-substring dispatch).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from jaxfactor.errors import ConfigError
from jaxfactor.params import check_params, number  # noqa: F401  (re-exported for the env modules)
from jaxfactor.registry import Registry
from jaxfactor.structs import EnvSpec, Timestep


class JaxEnv(Protocol):
    spec: EnvSpec

    def reset(self, key: jax.Array, t_env: jax.Array | None = None) -> tuple[Any, Timestep]: ...

    def step(self, key: jax.Array, env_state: Any, actions: jax.Array) -> tuple[Any, Timestep]: ...


ENV_KINDS: Registry = Registry("env.kind")


@dataclasses.dataclass(frozen=True)
class EnvReport:
    """What an env kind adds to every run's summary.json (under `key`) and printed result, registered in
    `ENV_REPORTS` under the kind, so the trainer needs no branch per env kind (the matrix games' tables)."""

    key: str
    summarise: Callable[..., dict]
    """(env, algo, params [lanes, ...], env_steps, diverged [lanes]) -> the summary entry (JSON-able)."""
    format: Callable[[dict], str]
    """summary entry -> the lines printed under the run's result."""


ENV_REPORTS: Registry[EnvReport] = Registry("env.kind report")


def quiet_jaxmarl() -> None:
    """jaxmarl prints two lines about optional submodules when its environments package is first imported.

    Silenced at the file-descriptor level: jaxmarl's mabrax import resets sys.stdout to the real stream."""
    if "jaxmarl.environments" in sys.modules:
        return
    streams = sys.stdout, sys.stderr
    streams[0].flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            import jaxmarl.environments  # noqa: F401
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        sys.stdout, sys.stderr = streams  # jaxmarl leaves sys.__stdout__ in place of a caller's stream


def stack_agents(per_agent: Mapping[str, jax.Array], agents: list[str]) -> jax.Array:
    """jaxmarl's per-agent dict -> [N, D] float32, each agent's array flattened, in `agents` order."""
    return jnp.stack([per_agent[a].reshape(-1) for a in agents]).astype(jnp.float32)


class JaxmarlTeamAdapter:
    """Shared part of jaxmarl adapters with all actions available, no termination (time limit only) and
    the concatenated learners' observations as the global state (jaxmarl's CTRolloutManager convention)."""

    env: Any
    learners: list[str]
    spec: EnvSpec

    def _setup(self, env: Any, learners: list[str], max_steps: int, obs_dtype: str = "float32") -> None:
        self.env, self.learners = env, learners
        obs_dim = math.prod(env.observation_spaces[learners[0]].shape)
        self.spec = EnvSpec(
            num_agents=len(learners),
            obs_dim=obs_dim,
            state_dim=obs_dim * len(learners),
            num_actions=int(env.action_spaces[learners[0]].n),
            episode_limit=max_steps,
            has_win_flag=False,
            obs_dtype=obs_dtype,
        )

    def _timestep(self, obs: dict, reward: jax.Array) -> Timestep:
        stacked = stack_agents(obs, self.learners)
        n, a = self.spec.num_agents, self.spec.num_actions
        return Timestep(
            obs=stacked,
            state=stacked.reshape(-1),
            avail=jnp.ones((n, a), bool),
            reward=jnp.asarray(reward, jnp.float32),
            terminal=jnp.array(False),
            won=jnp.array(False),
        )

    def reset(self, key: jax.Array, t_env: jax.Array | None = None) -> tuple[Any, Timestep]:
        del t_env
        obs, state = self.env.reset(key)
        return state, self._timestep(obs, jnp.array(0.0))


def make_env(kind: str, params: Mapping[str, Any]) -> Any:
    """Build the env of a registered kind from its kind-specific parameters: a JaxEnv, or for a host simulator
    (jaxfactor.hostenvs) the factory its workers build simulators from."""
    from jaxfactor.hostenvs import HOST_ENV_KINDS, make_host_env

    if kind in HOST_ENV_KINDS:
        return make_host_env(kind, params)
    if kind not in ENV_KINDS:
        raise ConfigError(
            f"unknown env.kind '{kind}'; allowed: {', '.join(sorted(ENV_KINDS.names() + HOST_ENV_KINDS.names()))}"
        )
    return ENV_KINDS.get(kind).from_params(params)
