"""Hand-made cases for the weighted family (ALGORITHMS.md §4–6)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxfactor.networks.mixers import MixerInput, QPLEXMixer
from jaxfactor.networks.recognition import RecognitionQr
from jaxfactor.rl.weighting import central_weights, optimistic_weights, potentially_optimal_weights


def test_cw_weights_match_section_5_4():
    # transitions: greedy joint action / target above Q*(greedy) / neither / both
    is_greedy = jnp.array([True, False, False, True])
    y = jnp.array([1.0, 5.0, 2.0, 9.0])
    q_star_greedy = jnp.array([3.0, 4.0, 3.0, 1.0])
    np.testing.assert_allclose(central_weights(is_greedy, y, q_star_greedy, 0.1), [1.0, 1.0, 0.1, 1.0])
    # equality is not "exceeds": y == Q*(greedy) off the greedy action gets alpha
    assert float(central_weights(jnp.array(False), jnp.array(3.0), jnp.array(3.0), 0.25)) == 0.25


def test_ow_weights_match_section_5_4():
    q_tot = jnp.array([1.0, 5.0, 2.0])
    y = jnp.array([2.0, 4.0, 2.0])  # under-estimated / over-estimated / exact
    np.testing.assert_allclose(optimistic_weights(q_tot, y, 0.5), [1.0, 0.5, 0.5])


def test_pow_set_membership_is_strict_and_weights_are_one_or_alpha():
    v_r = jnp.array([2.0, 2.0, 2.0, 2.0])
    q_r = jnp.array([2.0, 1.75, 1.5, 0.5])  # greedy, inside, on the boundary (excluded), far
    np.testing.assert_allclose(potentially_optimal_weights(q_r, v_r, 0.5, 0.0), [1.0, 1.0, 0.0, 0.0])
    np.testing.assert_allclose(potentially_optimal_weights(q_r, v_r, 2.0, 0.0), [1.0, 1.0, 1.0, 1.0])


def joint_table(n, a):
    joint = jnp.array(list(itertools.product(range(a), repeat=n)), jnp.int32)
    return joint, jax.nn.one_hot(joint, a)


@pytest.mark.parametrize("n, a", [(2, 3), (3, 4)])
def test_recognition_qr_equals_vr_at_greedy_and_never_exceeds_it(n, a):
    module = RecognitionQr()
    G = 5
    joint, onehot = joint_table(n, a)
    for trial in range(3):
        k = jax.random.fold_in(jax.random.key(0), trial)
        params = module.init(k, jnp.zeros((1, G)), jnp.zeros((1, n, a)), jnp.zeros((1, n)))
        state = jax.random.normal(jax.random.fold_in(k, 1), (G,))
        utilities = jax.random.normal(jax.random.fold_in(k, 2), (n, a)) * 3
        adv = utilities[jnp.arange(n), joint] - utilities.max(-1)  # [J, n] <= 0
        states = jnp.broadcast_to(state, (joint.shape[0], G))
        q_r, v_r = module.apply(params, states, onehot, adv)
        greedy = jnp.all(joint == jnp.argmax(utilities, -1), axis=-1)
        assert int(greedy.sum()) == 1
        np.testing.assert_array_equal(q_r[greedy], v_r[greedy])  # exactly V_r at the greedy joint action
        assert bool((q_r <= v_r).all())
        assert float((v_r - q_r)[~greedy].min()) > 0  # strictly below elsewhere (non-zero scales)


@pytest.mark.parametrize("n, a", [(2, 3), (3, 3), (4, 2)])
def test_qplex_satisfies_igm_on_random_inputs(n, a):
    mixer = QPLEXMixer(hypernet_dim=16, adv_layers=2)
    G = 6
    joint, onehot = joint_table(n, a)
    J = joint.shape[0]
    for trial in range(5):
        k = jax.random.fold_in(jax.random.key(1), trial)
        example = MixerInput(
            qs=jnp.zeros((1, n)), state=jnp.zeros((1, G)), q_max=jnp.zeros((1, n)), actions_onehot=jnp.zeros((1, n, a))
        )
        params = mixer.init(k, example)
        utilities = jax.random.normal(jax.random.fold_in(k, 1), (n, a)) * 2
        state = jnp.broadcast_to(jax.random.normal(jax.random.fold_in(k, 2), (G,)), (J, G))
        qs = utilities[jnp.arange(n), joint]
        q_max = jnp.broadcast_to(utilities.max(-1), (J, n))
        q_tot = mixer.apply(params, MixerInput(qs=qs, state=state, q_max=q_max, actions_onehot=onehot))
        best = joint[jnp.argmax(q_tot)]
        np.testing.assert_array_equal(best, jnp.argmax(utilities, -1))  # IGM
