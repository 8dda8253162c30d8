"""Action selection under availability masks, and the epsilon schedule (ALGORITHMS.md §1.4, §1.7)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def take(q: jax.Array, actions: jax.Array) -> jax.Array:
    """Values of the given actions. q [..., A], actions [...] -> [...]."""
    return jnp.take_along_axis(q, actions[..., None], axis=-1)[..., 0]


def masked_argmax(q: jax.Array, avail: jax.Array) -> jax.Array:
    """Greedy action over available actions only. q, avail [..., A] -> [...] int32."""
    return jnp.argmax(jnp.where(avail, q, jnp.finfo(q.dtype).min), axis=-1).astype(jnp.int32)


def masked_max(q: jax.Array, avail: jax.Array) -> jax.Array:
    return jnp.max(jnp.where(avail, q, jnp.finfo(q.dtype).min), axis=-1)


def uniform_available(key: jax.Array, avail: jax.Array) -> jax.Array:
    """A uniformly random available action per row. avail [..., A] -> [...] int32."""
    logits = jnp.where(avail, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def epsilon_greedy(key: jax.Array, q: jax.Array, avail: jax.Array, epsilon: jax.Array) -> jax.Array:
    """Per-agent epsilon-greedy: with probability epsilon a uniform available action, else the greedy one."""
    k_explore, k_random = jax.random.split(key)
    explore = jax.random.uniform(k_explore, q.shape[:-1]) < epsilon
    return jnp.where(explore, uniform_available(k_random, avail), masked_argmax(q, avail))


def linear_epsilon(t_env: jax.Array, start: jax.Array, finish: jax.Array, anneal_steps: jax.Array) -> jax.Array:
    """eps(t) = max(finish, start - (start - finish) t / T_anneal); also correct when start < finish."""
    frac = jnp.clip(t_env / anneal_steps, 0.0, 1.0)
    return start + (finish - start) * frac
