"""Recurrent agent utility network, "n_rnn" of PyMARL2 (ALGORITHMS.md §1.3).

x_{i,t} = [o_{i,t} || onehot(u_{i,t-1}) || onehot(i)];  h = GRU(ReLU(W1 x + b1), h);  Q = W2 h + b2.
Parameters are shared by all agents: agents are folded into the batch axis.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfactor.networks.layers import TorchDense, TorchGRUCell


class RecurrentQAgent(nn.Module):
    hidden_dim: int
    num_actions: int
    num_heads: int = 0
    """0: one utility vector [.., A]; K > 0: K heads [.., K, A] on a shared trunk (for sub-value methods)."""

    @nn.compact
    def __call__(self, h: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One step. h [..., H], x [..., Din] -> (h' [..., H], q [..., A] or [..., K, A])."""
        e = nn.relu(TorchDense(self.hidden_dim)(x))
        h = TorchGRUCell(self.hidden_dim)(h, e)
        if self.num_heads:
            q = TorchDense(self.num_heads * self.num_actions)(h)
            return h, q.reshape(q.shape[:-1] + (self.num_heads, self.num_actions))
        return h, TorchDense(self.num_actions)(h)


def agent_inputs(
    obs: jax.Array, last_action: jax.Array, num_actions: int, *, obs_last_action: bool, obs_agent_id: bool
) -> jax.Array:
    """Build x from obs [..., N, D] and the previous actions [..., N] (-1 = none: all-zero one-hot)."""
    parts = [obs]
    if obs_last_action:
        parts.append(jax.nn.one_hot(last_action, num_actions, dtype=obs.dtype))  # -1 -> zeros
    if obs_agent_id:
        n = obs.shape[-2]
        parts.append(jnp.broadcast_to(jnp.eye(n, dtype=obs.dtype), obs.shape[:-1] + (n,)))
    return jnp.concatenate(parts, axis=-1)


def input_dim(obs_dim: int, num_agents: int, num_actions: int, *, obs_last_action: bool, obs_agent_id: bool) -> int:
    return obs_dim + (num_actions if obs_last_action else 0) + (num_agents if obs_agent_id else 0)


def unroll(
    agent: RecurrentQAgent, params, x: jax.Array, h0: jax.Array, reset: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Unroll over time. x [T, B, Din], h0 [B, H], reset [T, B] (zero the carry before step t where set).

    Returns (h_T [B, H], q [T, B, A...], hs [T, B, H]).
    """

    @jax.checkpoint  # keep only the carry per step for the backward pass, recompute the rest (issue 21 item 5)
    def step(h, inputs):
        x_t, reset_t = inputs
        h = jnp.where(reset_t[:, None], jnp.zeros_like(h), h)
        h, q = agent.apply(params, h, x_t)
        return h, (q, h)

    h_T, (q, hs) = jax.lax.scan(step, h0, (x, reset))
    return h_T, q, hs
