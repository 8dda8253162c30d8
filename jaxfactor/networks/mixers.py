"""Mixers: Q_tot from chosen-action utilities and the global state.

One contract for every mixer: `__call__(x: MixerInput) -> q_tot [...]`, leading dims arbitrary
([B, T] in training, [E] when acting, [A^N] when tabulating a matrix game).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from jaxfactor.networks.layers import MLP, TorchDense
from jaxfactor.registry import Registry


@struct.dataclass
class MixerInput:
    qs: jax.Array
    """Chosen-action utilities [..., N]."""
    state: jax.Array
    """Global state [..., G]."""


MIXERS: Registry = Registry("algo.mixer")


@MIXERS.register("vdn")
class VDNMixer(nn.Module):
    """VDN (ALGORITHMS.md §2): Q_tot = sum_i Q_i(u_i); the state is ignored."""

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        return jnp.sum(x.qs, axis=-1)


@MIXERS.register("qmix")
class QMixMixer(nn.Module):
    """QMIX hypernetwork mixer (ALGORITHMS.md B2).

    W1 = g(MLP[G->H->N*Em](s)), b1 = Lin[G->Em](s), W2 = g(MLP[G->H->Em](s)), b2 = MLP[G->Em->1](s),
    Q_tot = ELU(q^T W1 + b1) W2 + b2, with g = |.| (monotone) or identity (monotone=False, §8.1).
    """

    embed_dim: int = 32
    hypernet_dim: int = 64
    monotone: bool = True

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        n, em = x.qs.shape[-1], self.embed_dim
        g = jnp.abs if self.monotone else (lambda w: w)
        s = x.state
        w1 = g(MLP([self.hypernet_dim, n * em])(s)).reshape(s.shape[:-1] + (n, em))
        b1 = TorchDense(em)(s)
        w2 = g(MLP([self.hypernet_dim, em])(s))
        b2 = MLP([em, 1])(s)[..., 0]
        hidden = jax.nn.elu(jnp.einsum("...n,...ne->...e", x.qs, w1) + b1)
        return jnp.einsum("...e,...e->...", hidden, w2) + b2


def make_mixer(name: str, *, embed_dim: int, hypernet_dim: int) -> nn.Module:
    cls = MIXERS.get(name)
    if cls is QMixMixer:
        return QMixMixer(embed_dim=embed_dim, hypernet_dim=hypernet_dim)
    return cls()
