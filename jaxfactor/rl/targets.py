"""TD(lambda) targets exactly as PyMARL2's `build_td_lambda_targets` (ALGORITHMS.md §1.5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def td_lambda_targets(
    r_t: jax.Array,
    terminal_t: jax.Array,
    mask_t: jax.Array,
    q_bar: jax.Array,
    gamma: jax.Array | float,
    lambda_: jax.Array | float,
) -> jax.Array:
    """ALGORITHMS.md §1.5:

        G_T = Qbar_T (1 - sum_{t<T} d_t)
        G_t = lambda gamma G_{t+1} + m_t [ r_t + (1 - lambda) gamma (1 - d_t) Qbar_{t+1} ],  t = T-1..0

    with two generalisations: after the last real transition of an episode that ended without terminating,
    G_{t+1} is Qbar_{t+1} (the bootstrap slot); PyMARL2's episodes end so only at t = T, where G_T is already
    Qbar_T; a host simulator's own time limit may truncate earlier (runner/episodes.py). And after a terminal
    transition G_{t+1} is 0: in a segment (several episodes per row) slot t+1 starts the next episode.

    Batch-major. r_t, terminal_t, mask_t: [B, T]; q_bar: [B, T+1] (bootstrap values of every slot).
    Returns y [B, T] (meaningful where mask_t is 1).
    """
    d = terminal_t.astype(jnp.float32)
    m = mask_t.astype(jnp.float32)
    g_T = q_bar[:, -1] * (1.0 - jnp.minimum(jnp.sum(d, axis=1), 1.0))
    m_next = jnp.concatenate([m[:, 1:], jnp.zeros_like(m[:, :1])], axis=1)
    truncated_after = (m > 0) & (m_next == 0) & (d == 0)  # slot t+1 is the bootstrap slot of a truncation

    def step(g_next, xs):
        r, d_t, m_t, q_next, cut = xs
        g_next = jnp.where(d_t > 0, 0.0, jnp.where(cut, q_next, g_next))
        g = lambda_ * gamma * g_next + m_t * (r + (1.0 - lambda_) * gamma * (1.0 - d_t) * q_next)
        return g, g

    xs = (r_t.T, d.T, m.T, q_bar[:, 1:].T, truncated_after.T)  # time-major [T, B]
    _, g = jax.lax.scan(step, g_T, xs, reverse=True)
    return g.T
