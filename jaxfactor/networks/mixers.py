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
    q_max: jax.Array | None = None
    """Per-agent max over available actions [..., N] (QPLEX's dueling form)."""
    actions_onehot: jax.Array | None = None
    """One-hot joint action [..., N, A] (QPLEX's attention)."""


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


@MIXERS.register("nmix")
class NonMonotoneQMixMixer(QMixMixer):
    """Non-monotonic QMIX (ALGORITHMS.md §8.1): B2 with g = identity, W1 and W2 may be negative."""

    monotone: bool = False


@MIXERS.register("qplex")
class QPLEXMixer(nn.Module):
    """QPLEX / DMAQ-Qatten as in PyMARL2 (ALGORITHMS.md §4.1–4.2).

    q~_i = w_i(s) q_i + v_i(s), q~max_i = w_i(s) q_max_i + v_i(s) with w = |MLP[G->H->N]| + 1e-10;
    lambda_i(s,u) = sum_k kappa_k(s) alpha_{k,i}(s) beta_{k,i}(s,u) (K kernels);
    Q_tot = sum_i q~_i + sum_i (lambda_i - 1) sg(q~_i - q~max_i)   (the "V" and "A" passes).
    """

    hypernet_dim: int = 64
    num_kernels: int = 4
    adv_layers: int = 2
    """Layers of each kappa/alpha/beta MLP (2 = one hidden layer of width hypernet_dim)."""

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        n = x.qs.shape[-1]
        s, hid = x.state, self.hypernet_dim
        w = jnp.abs(MLP([hid, n])(s)) + 1e-10
        v = MLP([hid, n])(s)
        q_t = w * x.qs + v
        q_max_t = w * x.q_max + v
        hidden = [hid] * (self.adv_layers - 1)
        joint = x.actions_onehot.reshape(x.actions_onehot.shape[:-2] + (-1,))  # agent-major flattening
        s_u = jnp.concatenate([s, joint.astype(s.dtype)], axis=-1)
        lam = 0.0
        for _ in range(self.num_kernels):
            kappa = jnp.abs(MLP(hidden + [1])(s)) + 1e-10
            alpha = jax.nn.sigmoid(MLP(hidden + [n])(s))
            beta = jax.nn.sigmoid(MLP(hidden + [n])(s_u))
            lam = lam + kappa * alpha * beta
        adv = jax.lax.stop_gradient(q_t - q_max_t)
        return jnp.sum(q_t, axis=-1) + jnp.sum((lam - 1.0) * adv, axis=-1)


class CentralMixer(nn.Module):
    """Unrestricted feed-forward joint value Q-hat-star (ALGORITHMS.md B3):
    MLP[G+N -> Ec -> Ec -> Ec -> 1]([s || q-hat(u)]) + MLP[G -> Ec -> 1](s). Not monotone."""

    embed_dim: int = 256

    @nn.compact
    def __call__(self, x: MixerInput) -> jax.Array:
        e = self.embed_dim
        inputs = jnp.concatenate([x.state, x.qs], axis=-1)
        return MLP([e, e, e, 1])(inputs)[..., 0] + MLP([e, 1])(x.state)[..., 0]


def make_mixer(name: str, *, embed_dim: int, hypernet_dim: int, adv_layers: int = 2) -> nn.Module:
    cls = MIXERS.get(name)
    if issubclass(cls, QMixMixer):
        return cls(embed_dim=embed_dim, hypernet_dim=hypernet_dim)
    if cls is QPLEXMixer:
        return QPLEXMixer(hypernet_dim=hypernet_dim, adv_layers=adv_layers)
    return cls()
