"""TD(lambda) targets exactly as PyMARL2's `build_td_lambda_targets` (ALGORITHMS.md §1.5)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def td_lambda_targets(r_t: jax.Array, terminal_t: jax.Array, mask_t: jax.Array, q_bar: jax.Array,
                      gamma: jax.Array | float, lambda_: jax.Array | float) -> jax.Array:
    """ALGORITHMS.md §1.5:

        G_T = Qbar_T (1 - sum_{t<T} d_t)
        G_t = lambda gamma G_{t+1} + m_t [ r_t + (1 - lambda) gamma (1 - d_t) Qbar_{t+1} ],  t = T-1..0

    Batch-major. r_t, terminal_t, mask_t: [B, T]; q_bar: [B, T+1] (bootstrap values of every slot).
    Returns y [B, T].
    """
    d = terminal_t.astype(jnp.float32)
    m = mask_t.astype(jnp.float32)
    g_T = q_bar[:, -1] * (1.0 - jnp.sum(d, axis=1))

    def step(g_next, xs):
        r, d_t, m_t, q_next = xs
        g = lambda_ * gamma * g_next + m_t * (r + (1.0 - lambda_) * gamma * (1.0 - d_t) * q_next)
        return g, g

    xs = (r_t.T, d.T, m.T, q_bar[:, 1:].T)  # time-major [T, B]
    _, g = jax.lax.scan(step, g_T, xs, reverse=True)
    return g.T
