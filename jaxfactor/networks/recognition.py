"""POW's recognition module Q_r (ALGORITHMS.md §6.2, reconstructed from the POW code).

Q_r(s,u) = V_r(s) + sum_i lambda^r_i(s,u) sg(A_i),  lambda^r = |W1(x)| |W2(x)| >= 0,  x = [s || onehot(u)],
W1 = MLP[G+NA -> 128 -> 128 -> 64N] (N x 64), W2 = MLP[. -> 128 -> 128 -> 64] (64 x 1), no bias or
non-linearity between the factors; V_r = MLP[G -> 128 -> 128 -> 1]. Since A_i <= 0 with A_i = 0 at the
greedy action: Q_r <= V_r everywhere and Q_r(s, u-bar) = V_r(s) exactly.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfactor.networks.layers import MLP


class RecognitionQr(nn.Module):
    hypernet_dim: int = 128
    mixing_dim: int = 64
    v_dim: int = 128

    @nn.compact
    def __call__(
        self, state: jax.Array, actions_onehot: jax.Array, advantages: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """state [..., G], actions_onehot [..., N, A], advantages [..., N] (<= 0) -> (Q_r [...], V_r [...])."""
        n, h, m = advantages.shape[-1], self.hypernet_dim, self.mixing_dim
        joint = actions_onehot.reshape(actions_onehot.shape[:-2] + (-1,)).astype(state.dtype)
        x = jnp.concatenate([state, joint], axis=-1)
        w1 = jnp.abs(MLP([h, h, n * m])(x)).reshape(x.shape[:-1] + (n, m))
        w2 = jnp.abs(MLP([h, h, m])(x))  # [..., m]
        scales = jnp.einsum("...nm,...m->...n", w1, w2)  # lambda^r [..., N] >= 0
        v_r = MLP([self.v_dim, self.v_dim, 1])(state)[..., 0]
        q_r = v_r + jnp.sum(scales * jax.lax.stop_gradient(advantages), axis=-1)
        return q_r, v_r
