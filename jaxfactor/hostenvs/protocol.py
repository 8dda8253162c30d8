"""The host-simulator contract (numpy, one env, no JAX): what every wrapper of a simulator that cannot be
jitted (highway-env, StarCraft II, Google Research Football) returns, so one host collector drives them all.

    reset(seed, t_env) -> {"obs": f32 [N, D], "state": f32 [G], "avail": bool [N, A]}
    step(actions int32 [N]) -> the same keys plus
        "reward": f32 (one team reward), "terminal": bool (true termination only),
        "truncated": bool (the simulator's own time limit, never terminal), "won": bool,
        "invalid": bool (the simulator restarted itself in band: the episode is discarded, never stored)
    close()
    render() -> uint8 [H, W, 3] frame (optional)

`t_env` is the learner's env-step count at the episode's start (non-stationary envs read it).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from jaxfactor.spec import EnvSpec

SEEN = ("obs", "state", "avail")
OUTCOME = ("reward", "terminal", "truncated", "won", "invalid")


class HostEnv(Protocol):
    spec: EnvSpec

    def reset(self, seed: int, t_env: int) -> dict[str, np.ndarray]: ...

    def step(self, actions: np.ndarray) -> dict[str, Any]: ...

    def close(self) -> None: ...


class ContractError(RuntimeError):
    """A simulator wrapper returned something the contract does not allow (a bug in the wrapper, not a crash)."""


def seen(spec: EnvSpec, obs: Any, state: Any, avail: Any) -> dict[str, np.ndarray]:
    """The observation part of a timestep in the contract's dtypes and shapes."""
    return {
        "obs": np.asarray(obs, np.float32).reshape(spec.num_agents, spec.obs_dim),
        "state": np.asarray(state, np.float32).reshape(spec.state_dim),
        "avail": np.asarray(avail, bool).reshape(spec.num_agents, spec.num_actions),
    }


def outcome(
    reward: float, terminal: bool, truncated: bool = False, won: bool = False, invalid: bool = False
) -> dict[str, Any]:
    return {
        "reward": np.float32(reward),
        "terminal": bool(terminal),
        "truncated": bool(truncated) and not terminal,
        "won": bool(won),
        "invalid": bool(invalid),
    }


def check_timestep(spec: EnvSpec, ts: dict[str, Any], stepped: bool) -> None:
    """Shapes, dtypes and finiteness of one timestep, and that every agent can act (ContractError otherwise)."""
    shapes = {
        "obs": (spec.num_agents, spec.obs_dim),
        "state": (spec.state_dim,),
        "avail": (spec.num_agents, spec.num_actions),
    }
    for name, shape in shapes.items():
        value = ts.get(name)
        if not isinstance(value, np.ndarray) or value.shape != shape:
            got = getattr(value, "shape", type(value).__name__)
            raise ContractError(f"'{name}' must be an array of shape {shape}, got {got}")
    if ts["obs"].dtype != np.float32 or ts["state"].dtype != np.float32 or ts["avail"].dtype != bool:
        raise ContractError(
            f"dtypes must be obs/state float32 and avail bool, got {ts['obs'].dtype}, "
            f"{ts['state'].dtype}, {ts['avail'].dtype}"
        )
    if not (np.isfinite(ts["obs"]).all() and np.isfinite(ts["state"]).all()):
        raise ContractError("obs and state must be finite")
    if not ts["avail"].any(axis=1).all():
        raise ContractError(
            f"every agent needs an available action; agents {np.flatnonzero(~ts['avail'].any(1))} have none"
        )
    if stepped:
        missing = [k for k in OUTCOME if k not in ts]
        if missing:
            raise ContractError(f"step() must return {', '.join(OUTCOME)}; missing {', '.join(missing)}")
        if not np.isfinite(ts["reward"]):
            raise ContractError(f"reward must be finite, got {ts['reward']}")
