"""Networks of the exploration add-ons: RND (ALGORITHMS.md §8.3) and ME-IGM's order-preserving
transformation (§9.2)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfactor.networks.layers import MLP, TorchDense


class RNDNetwork(nn.Module):
    """MLP[|s| -> 128 -> 128 -> 64] (§8.3 choice); one instance is the frozen target, one the predictor."""

    @nn.compact
    def __call__(self, state: jax.Array) -> jax.Array:
        return MLP([128, 128, 64])(state)


class OrderPreservingTransform(nn.Module):
    """OPT_i(x, s) of ALGORITHMS.md §9.2 (Eq. 2), one per agent, from a state hypernetwork.

    layers=1: OPT_i(x, s) = |w_i(s)| x + b_i(s), w, b from MLP[|s| -> 64 -> N] (the SMACv2 setting).
    layers=2: OPT_i(x, s)_a = sum_j W2_ij(s) ELU(W1_ij(s) x_a + b1_ij(s)) + b2_i(s), W1, W2 >= 0 (abs of
    MLP[|s| -> 64 -> N d1]), b1 = Lin[|s| -> N d1], b2 = MLP[|s| -> d1 -> N].
    Non-negative weights and increasing ELU make every OPT_i increasing in x (order preserving).
    """

    num_agents: int
    layers: int = 1
    embed_dim: int = 32
    hypernet_dim: int = 64

    @nn.compact
    def __call__(self, q: jax.Array, state: jax.Array) -> jax.Array:
        """q [..., N, A], state [..., G] -> OPT(q) [..., N, A]."""
        n, d = self.num_agents, self.embed_dim
        if self.layers == 1:
            w = jnp.abs(MLP([self.hypernet_dim, n])(state))[..., None]
            b = MLP([self.hypernet_dim, n])(state)[..., None]
            return w * q + b
        lead = state.shape[:-1]
        w1 = jnp.abs(MLP([self.hypernet_dim, n * d])(state)).reshape(lead + (n, 1, d))
        w2 = jnp.abs(MLP([self.hypernet_dim, n * d])(state)).reshape(lead + (n, 1, d))
        b1 = TorchDense(n * d)(state).reshape(lead + (n, 1, d))
        b2 = MLP([d, n])(state)[..., None]
        return jnp.sum(w2 * jax.nn.elu(w1 * q[..., None] + b1), axis=-1) + b2
