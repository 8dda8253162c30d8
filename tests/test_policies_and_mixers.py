"""Masked action selection, QMIX monotonicity, VDN additivity."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxfactor.networks.mixers import MixerInput, QMixMixer, VDNMixer
from jaxfactor.rl.policies import epsilon_greedy, linear_epsilon, masked_argmax


def random_masks(key, shape):
    avail = jax.random.bernoulli(key, 0.4, shape)
    return avail.at[..., 0].set(avail[..., 0] | ~avail.any(-1))  # at least one available action


def test_masked_selection_never_picks_unavailable():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    shape = (4096, 5, 9)
    avail = random_masks(k1, shape)
    q = jax.random.normal(k2, shape) * 100
    q = jnp.where(avail, q, q + 1e6)  # unavailable actions look best: a broken mask would pick them
    for eps in (0.0, 0.5, 1.0):
        a = epsilon_greedy(k3, q, avail, jnp.float32(eps))
        assert bool(jnp.take_along_axis(avail, a[..., None], -1).all()), f"eps={eps} picked an unavailable action"
    g = masked_argmax(q, avail)
    assert bool(jnp.take_along_axis(avail, g[..., None], -1).all())
    # eps = 1 covers every available action (uniform exploration really happens)
    a = epsilon_greedy(
        k3,
        jnp.zeros((20000, 1, 4)),
        jnp.array([True, False, True, True])[None, None].repeat(20000, 0),
        jnp.float32(1.0),
    )
    counts = np.bincount(np.asarray(a).ravel(), minlength=4)
    assert counts[1] == 0 and (counts[[0, 2, 3]] > 6000).all()


def test_linear_epsilon():
    f = lambda t: float(linear_epsilon(jnp.float32(t), 1.0, 0.05, 100.0))  # noqa: E731
    assert f(0) == 1.0 and abs(f(50) - 0.525) < 1e-6 and abs(f(100) - 0.05) < 1e-7 and abs(f(1e6) - 0.05) < 1e-7


def test_qmix_is_monotone_in_every_utility():
    mixer = QMixMixer(embed_dim=8, hypernet_dim=16)
    key = jax.random.key(1)
    x = MixerInput(qs=jnp.zeros((1, 3)), state=jnp.zeros((1, 6)))
    for i in range(5):
        params = mixer.init(jax.random.fold_in(key, i), x)
        qs = jax.random.normal(jax.random.fold_in(key, 100 + i), (64, 3)) * 5
        state = jax.random.normal(jax.random.fold_in(key, 200 + i), (64, 6))
        grads = jax.vmap(jax.grad(lambda q, s: mixer.apply(params, MixerInput(qs=q, state=s))))(qs, state)
        assert bool((grads >= 0).all()), "dQ_tot/dQ_i must be non-negative"
    # the same hypernetwork without |.| is not monotone for some input (the constraint does the work)
    free = QMixMixer(embed_dim=8, hypernet_dim=16, monotone=False)
    params = free.init(key, x)
    grads = jax.vmap(jax.grad(lambda q, s: free.apply(params, MixerInput(qs=q, state=s))))(qs, state)
    assert bool((grads < 0).any())


def test_vdn_is_additive():
    mixer = VDNMixer()
    qs = jax.random.normal(jax.random.key(2), (10, 4))
    state = jnp.ones((10, 3))
    out = mixer.apply({}, MixerInput(qs=qs, state=state))
    np.testing.assert_allclose(np.asarray(out), np.asarray(qs.sum(-1)), rtol=1e-6)
    grads = jax.grad(lambda q: mixer.apply({}, MixerInput(qs=q, state=state)).sum())(qs)
    np.testing.assert_allclose(np.asarray(grads), 1.0)
