"""Episode replay buffer (PyMARL2 semantics): FIFO of whole episodes (or of segments under the segment layout),
uniform sampling without replacement (ALGORITHMS.md §1.7, §13 item 19). One buffer per seed; the seed axis is
added by vmap.

flashbax's trajectory buffer samples fixed-length windows from a time ring; PyMARL2 stores padded
episodes with fill masks and samples B distinct episodes, so we keep this small buffer instead.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxfactor.errors import ConfigError
from jaxfactor.structs import EnvSpec, Episodes


@struct.dataclass
class BufferState:
    data: Episodes  # leaves [C, T, ...]
    insert_pos: jax.Array  # [] int32
    size: jax.Array  # [] int32


def episode_shapes(spec: EnvSpec, segment_length: int | None = None) -> Episodes:
    """ShapeDtypeStructs of one stored row: an episode (T = episode_limit + 1 slots) or, with `segment_length`,
    a segment (T = segment_length + 1 slots: the steps and the observation after the last one, with `start`)."""
    T = spec.episode_limit + 1 if segment_length is None else segment_length + 1
    N, A = spec.num_agents, spec.num_actions
    sds, stored = jax.ShapeDtypeStruct, jnp.dtype(spec.obs_dtype)
    return Episodes(
        obs=sds((T, N, spec.obs_dim), stored),
        state=sds((T, spec.state_dim), stored),
        avail=sds((T, N, A), jnp.bool_),
        actions=sds((T, N), jnp.int32),
        reward=sds((T,), jnp.float32),
        terminal=sds((T,), jnp.bool_),
        filled=sds((T,), jnp.bool_),
        start=None if segment_length is None else sds((T,), jnp.bool_),
    )


def estimate_bytes(spec: EnvSpec, capacity: int, segment_length: int | None = None) -> int:
    """Bytes of one seed's buffer."""
    leaves = jax.tree.leaves(episode_shapes(spec, segment_length))
    return capacity * sum(int(np.prod(x.shape)) * x.dtype.itemsize for x in leaves)


def available_memory_bytes() -> int:
    """Free memory of this process's first device (GPU stats when present, host RAM otherwise)."""
    dev = jax.local_devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(
    spec: EnvSpec, capacity: int, num_seeds: int, max_fraction: float, segment_length: int | None = None
) -> int:
    """Fail fast, before allocating, if the replay buffers would not fit. Returns the total bytes."""
    total = estimate_bytes(spec, capacity, segment_length) * num_seeds
    free = available_memory_bytes()
    if total > max_fraction * free:
        rows = "episodes" if segment_length is None else "segments"
        raise ConfigError(
            f"replay buffers need {total / 2**30:.2f} GiB ({num_seeds} seeds x algo.buffer_size={capacity} "
            f"{rows} x {estimate_bytes(spec, 1, segment_length) / 2**10:.1f} KiB), more than "
            f"max_buffer_memory_fraction={max_fraction} of the {free / 2**30:.2f} GiB free; lower algo.buffer_size or "
            "num_seeds"
        )
    return total


def init(spec: EnvSpec, capacity: int, segment_length: int | None = None) -> BufferState:
    data = jax.tree.map(lambda s: jnp.zeros((capacity,) + s.shape, s.dtype), episode_shapes(spec, segment_length))
    return BufferState(data=data, insert_pos=jnp.array(0, jnp.int32), size=jnp.array(0, jnp.int32))


def add(buffer: BufferState, episodes: Episodes, valid: jax.Array | None = None) -> BufferState:
    """Insert E episodes (leaves [E, T, ...]) FIFO; rows where `valid` [E] is False are skipped (not stored,
    not counted) and the valid ones stored contiguously."""
    capacity = buffer.data.reward.shape[0]
    valid = jnp.ones(episodes.reward.shape[:1], bool) if valid is None else valid
    rank = jnp.cumsum(valid.astype(jnp.int32)) - 1  # position among the valid rows
    idx = jnp.where(valid, (buffer.insert_pos + rank) % capacity, capacity)  # out of range: dropped
    data = jax.tree.map(
        lambda store, new: store.at[idx].set(new.astype(store.dtype), mode="drop"), buffer.data, episodes
    )  # obs and state in the env's storage dtype
    num = jnp.sum(valid.astype(jnp.int32))
    return BufferState(
        data=data, insert_pos=(buffer.insert_pos + num) % capacity, size=jnp.minimum(buffer.size + num, capacity)
    )


def sample(buffer: BufferState, key: jax.Array, batch_size: int) -> Episodes:
    """B distinct episodes, uniformly among the stored ones (top-k of random scores = sampling
    without replacement). Requires size >= B, which the runner checks before learning."""
    capacity = buffer.data.reward.shape[0]
    scores = jax.random.uniform(key, (capacity,))
    scores = jnp.where(jnp.arange(capacity) < buffer.size, scores, -1.0)
    _, idx = jax.lax.top_k(scores, batch_size)
    batch = jax.tree.map(lambda x: x[idx], buffer.data)
    return batch.replace(obs=batch.obs.astype(jnp.float32), state=batch.state.astype(jnp.float32))


def can_sample(buffer: BufferState, batch_size: int) -> jax.Array:
    return buffer.size >= batch_size
