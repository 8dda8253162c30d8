"""PyTorch-style layers (ALGORITHMS.md §1.10, §13 item 17).

Weights and biases are U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as in torch.nn.Linear/GRUCell, because
the matrix-game regressions of §11 depend on the scale of the initial utilities. No orthogonal
init anywhere: it needs a (batched, under vmap over seeds) QR, which deadlocks some CPU builds.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def torch_uniform(fan_in: int):
    bound = 1.0 / jnp.sqrt(jnp.asarray(fan_in, jnp.float32))

    def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


class TorchDense(nn.Module):
    """Affine layer with torch.nn.Linear's default initialisation."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", torch_uniform(fan_in), (fan_in, self.features))
        bias = self.param("bias", torch_uniform(fan_in), (self.features,))
        return x @ kernel + bias


class MLP(nn.Module):
    """MLP[d0 -> d1 -> ... -> dk]: ReLU between layers, none after the last (ALGORITHMS.md B1)."""

    features: Sequence[int]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, f in enumerate(self.features):
            x = TorchDense(f)(x)
            if i < len(self.features) - 1:
                x = nn.relu(x)
        return x


class TorchGRUCell(nn.Module):
    """torch.nn.GRUCell with its parameter layout and init (separate input and hidden biases).

    r = sigma(W_ir x + b_ir + W_hr h + b_hr); z = sigma(W_iz x + b_iz + W_hz h + b_hz);
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h.
    """

    hidden_dim: int

    @nn.compact
    def __call__(self, h: jax.Array, x: jax.Array) -> jax.Array:
        H = self.hidden_dim
        init = torch_uniform(H)  # torch uses 1/sqrt(hidden_size) for every GRU parameter
        w_ih = self.param("w_ih", init, (x.shape[-1], 3 * H))
        w_hh = self.param("w_hh", init, (H, 3 * H))
        b_ih = self.param("b_ih", init, (3 * H,))
        b_hh = self.param("b_hh", init, (3 * H,))
        gi = x @ w_ih + b_ih  # [..., 3H]
        gh = h @ w_hh + b_hh  # [..., 3H]
        r = jax.nn.sigmoid(gi[..., :H] + gh[..., :H])
        z = jax.nn.sigmoid(gi[..., H : 2 * H] + gh[..., H : 2 * H])
        n = jnp.tanh(gi[..., 2 * H :] + r * gh[..., 2 * H :])
        return (1.0 - z) * n + z * h
