"""Data types shared by environments, buffers, algorithms and runners.

Episodes follow the PyMARL2 layout (ALGORITHMS.md §1.2): an episode with limit L occupies
T = L + 1 slots; slot t < L holds a transition, the slot after the last real transition
(the bootstrap slot) holds the final observation and a behaviour action chosen there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from jaxfactor.spec import EnvSpec  # noqa: F401  (re-exported: EnvSpec is JAX-free for host workers)


def where_env(mask: jax.Array, new, old):
    """Per-env select over pytrees whose leaves lead with the env axis E: `new` where mask [E] is set."""
    return jax.tree.map(lambda n, o: jnp.where(mask.reshape(mask.shape + (1,) * (n.ndim - 1)), n, o), new, old)


@struct.dataclass
class Timestep:
    """What an environment returns, for one env (VecEnv prepends E).

    obs [N,D] f32, state [G] f32, avail [N,A] bool, reward [] f32 (one team reward),
    terminal [] bool (true termination only; the time limit is never terminal),
    won [] bool (battle won on this step; always False for envs without a win flag).
    """

    obs: jax.Array
    state: jax.Array
    avail: jax.Array
    reward: jax.Array
    terminal: jax.Array
    won: jax.Array


@struct.dataclass
class Episodes:
    """A batch of stored episodes, batch-major: leading [B, T] (or [E, T] from a rollout).

    obs [B,T,N,D], state [B,T,G], avail [B,T,N,A] bool, actions [B,T,N] int32,
    reward [B,T] f32, terminal [B,T] bool (d_t), filled [B,T] bool (f_t).
    reward/terminal are meaningful on slots 0..T-2 only (the last slot is a bootstrap slot).
    start [B,T] bool, segment layout only (None: each row is one episode from slot 0): an episode starts at
    slot t (after a reset), so the recurrent state and previous action restart there.
    """

    obs: jax.Array
    state: jax.Array
    avail: jax.Array
    actions: jax.Array
    reward: jax.Array
    terminal: jax.Array
    filled: jax.Array
    start: jax.Array | None = None

    @property
    def mask(self) -> jax.Array:
        """m_t for t = 0..T-2: 1 exactly on real transitions, i.e. where slot t+1 is filled (a real step always
        leaves a next observation). Equal to ALGORITHMS.md §1.2's m_t = f_t (1 - d_{t-1}) on episodes that end by
        termination or at the limit, and also right after a truncation before the limit, whose bootstrap slot
        is filled but is not a transition. In a segment, the step into the next episode's first slot is a
        transition only if it terminated (its target needs no next observation); at the time limit its final
        observation was never stored, so it is not learned."""
        return (self.filled[:, 1:] & (self.terminal[:, :-1] | ~self.starts[:, 1:])).astype(jnp.float32)

    @property
    def starts(self) -> jax.Array:
        """[B, T] bool: an episode starts at slot t after slot 0 (`start`; none in the episode layout)."""
        return jnp.zeros(self.filled.shape, bool) if self.start is None else self.start
