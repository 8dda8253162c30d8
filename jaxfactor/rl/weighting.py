"""Weights of the factorised TD loss. Pure functions; the caller wraps them in stop_gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def central_weights(is_greedy_joint: jax.Array, y: jax.Array, q_star_greedy: jax.Array, alpha) -> jax.Array:
    """CW-QMIX (ALGORITHMS.md §5.4): w = 1 if u_t = u-bar_t (all agents) or y_t > Q-hat*^-(s_t, u-bar_t), else alpha."""
    return jnp.where(is_greedy_joint | (y > q_star_greedy), 1.0, alpha)


def optimistic_weights(q_tot: jax.Array, y: jax.Array, alpha) -> jax.Array:
    """OW-QMIX (ALGORITHMS.md §5.4): w = 1 if Q_tot - y < 0 (under-estimated), else alpha."""
    return jnp.where(q_tot - y < 0.0, 1.0, alpha)


def potentially_optimal_weights(q_r: jax.Array, v_r: jax.Array, tolerance, alpha, w_plus=1.0) -> jax.Array:
    """POW (ALGORITHMS.md §6.3): u in P(s) iff |Q_r(s,u) - V_r(s)| < eps_r (strict); w = w_plus in P, alpha outside."""
    return jnp.where(jnp.abs(q_r - v_r) < tolerance, w_plus, alpha)
