"""The PyMARL2 episode layout (ALGORITHMS.md §1.2), written once for every collector.

An episode with limit L fills T = L + 1 slots. Slot t holds what the agents saw (obs, state, avail), the
action chosen there, and the reward and termination flag of the step taken from it; `filled` marks every
slot that received data. The slot after the last real transition is the bootstrap slot: the final
observation and a behaviour action chosen at it. An episode ends at a true termination (terminal = 1), at a
truncation (the simulator's own time limit: terminal = 0, the next slot bootstraps) or at the limit L.
After the bootstrap slot every slot is padding: the final observation again, action 0, no reward, no flag, so a
collector may stop stepping once every episode is over and write the rest without acting.

The rules are functions of an array module `xp` (jax.numpy in the device rollout, numpy in a host
collector), so both write the same bits; `rollout_keys` is the one key stream of a collected update.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import struct

from jaxfactor.structs import EnvSpec, Episodes


@struct.dataclass
class SlotCarry:
    """Progress of E envs through their episodes, leaves [E] (or any leading shape)."""

    ended: Any  # bool: terminated or truncated; the next filled slot is the bootstrap slot
    over: Any  # bool: the bootstrap slot has been written, nothing more is stored
    ret: Any  # f32: return so far
    length: Any  # i32: real transitions so far
    won: Any  # bool


def start(xp, shape: tuple[int, ...]) -> SlotCarry:
    false = xp.zeros(shape, bool)
    return SlotCarry(
        ended=false, over=false, ret=xp.zeros(shape, xp.float32), length=xp.zeros(shape, xp.int32), won=false
    )


def slot_flags(carry: SlotCarry, t, limit: int):
    """(filled, real) of slot t: filled = something is stored there; real = the env steps from it."""
    filled = ~carry.over
    return filled, filled & ~carry.ended & (t < limit)


def write_slot(
    xp, carry: SlotCarry, filled, real, obs, state, avail, actions, reward, terminal, won, truncated=False
) -> tuple[Episodes, SlotCarry]:
    """Slot t's stored data and the carry after it. obs/state/avail are what the agents saw at slot t; reward,
    terminal, won and truncated are the step's outcome, ignored where the env did not really step."""
    reward = xp.where(real, reward, xp.float32(0.0))
    terminal = real & terminal
    actions = xp.where(filled[..., None], actions, 0)  # padding holds no behaviour action
    stored = Episodes(
        obs=obs, state=state, avail=avail, actions=actions, reward=reward, terminal=terminal, filled=filled
    )
    carry = SlotCarry(
        ended=carry.ended | terminal | (real & truncated),
        over=carry.over | (filled & ~real),  # this slot was the bootstrap slot
        ret=carry.ret + reward,
        length=carry.length + real.astype(xp.int32),
        won=carry.won | (real & won),
    )
    return stored, carry


def episode_stats(xp, carry: SlotCarry) -> dict[str, Any]:
    """Per-env return, number of real transitions and win flag (float) of finished episodes."""
    return {"return": carry.ret, "length": carry.length, "won": carry.won.astype(xp.float32)}


def rollout_keys(key: jax.Array, num_envs: int, limit: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The key stream of one collected update: (reset keys [E], act keys [T], env-step keys [T, E])."""
    k_reset, k_loop = jax.random.split(key)
    slot_keys = jax.random.split(k_loop, limit + 1)
    k_act, k_env = jax.vmap(jax.random.split, out_axes=1)(slot_keys)
    return jax.random.split(k_reset, num_envs), k_act, jax.vmap(lambda k: jax.random.split(k, num_envs))(k_env)


class EpisodeWriter:
    """A host collector's side of the layout: numpy arrays [*lead, T, ...] filled slot by slot.

    Per slot t: `filled, real = writer.flags(t)`; choose actions for every row; step only the `real` rows;
    `writer.write(t, seen, actions, outcome)` with `seen` the (obs, state, avail) the agents acted on and
    `outcome` (reward, terminal, won, truncated) of the step (any value where a row did not step)."""

    def __init__(self, spec: EnvSpec, lead: tuple[int, ...]):
        from jaxfactor.buffers import episode_shapes

        self.limit = spec.episode_limit
        self.data = {
            name: np.zeros(lead + s.shape, s.dtype) for name, s in vars(episode_shapes(spec)).items() if s is not None
        }  # no `start`: one episode per row
        self.carry = start(np, lead)

    def flags(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        return slot_flags(self.carry, t, self.limit)

    def write(self, t: int, obs, state, avail, actions, reward, terminal, won, truncated=False) -> None:
        filled, real = self.flags(t)
        outcome = (
            np.asarray(reward, np.float32),
            np.asarray(terminal, bool),
            np.asarray(won, bool),
            np.asarray(truncated, bool),
        )
        stored, self.carry = write_slot(np, self.carry, filled, real, obs, state, avail, actions, *outcome)
        at = (slice(None),) * self.carry.ret.ndim + (t,)  # [*lead, t]
        for name, value in vars(stored).items():
            if value is None:
                continue
            self.data[name][at] = value

    def episodes(self) -> Episodes:
        return Episodes(**self.data)

    def stats(self) -> dict[str, np.ndarray]:
        return episode_stats(np, self.carry)
