"""The generic update admits what later algorithms need without touching the loop: an extra parameter
group with its own optimiser and inner steps (20 on the first update, 10 after, as POW's recogniser),
a stage that prepares stop-gradient inputs once, and weights handed to the main TD stage."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
from conftest import exploring, make_cfg

from jaxfactor.algos import make_algo
from jaxfactor.algos.base import Stage
from jaxfactor.envs import make_env
from jaxfactor.runner.rollout import rollout


def test_extra_stage_with_inner_steps_and_weights():
    cfg = make_cfg("algo=qmix", "env=matrix_m1", "algo.batch_size=8")
    env = make_env(cfg.env.kind, cfg.env.params)
    base = make_algo(cfg.algo, env.spec, cfg.env.agent_inputs)
    main = base.stages[0]
    calls = {"prepare": 0}

    def prepare(params, target_params, batch, hp, carry):
        calls["prepare"] += 1  # trace-time count: once per update, not once per inner step
        return carry.replace(prepared=jnp.float32(3.0))

    def aux_loss(params, target_params, batch, hp, key, carry):
        loss = (params["aux"]["x"] - carry.prepared) ** 2
        # zero weights everywhere: the main TD stage must then leave its parameters untouched
        return loss, ({}, carry.replace(weights=jnp.zeros_like(batch.mask)))

    aux = Stage(
        name="aux",
        owns=("aux",),
        loss=aux_loss,
        optimizer=lambda learning_rate: optax.sgd(learning_rate),
        learning_rate=lambda hp: jnp.float32(0.1),
        steps=2,
        first_steps=3,
        prepare=prepare,
    )
    algo = dataclasses.replace(
        base, stages=(aux, main), init_params=lambda k: {**base.init_params(k), "aux": {"x": jnp.float32(0.0)}}
    )
    state = algo.init(jax.random.key(0))
    episodes, _ = rollout(algo, env, exploring(state.params, 1.0), jax.random.key(1), 8, greedy=False)
    update = jax.jit(algo.update)
    state1, metrics = update(state, episodes, jax.random.key(2))
    # 3 SGD steps on (x-3)^2 with lr 0.1 from 0: x <- x + 0.2 (3 - x)
    x = 0.0
    for _ in range(3):
        x += 0.2 * (3 - x)
    np.testing.assert_allclose(state1.params["aux"]["x"], x, rtol=1e-6)
    state2, _ = update(state1, episodes, jax.random.key(3))
    for _ in range(2):
        x += 0.2 * (3 - x)
    np.testing.assert_allclose(state2.params["aux"]["x"], x, rtol=1e-6)
    assert calls["prepare"] == 1
    # zero weights from the earlier stage: the TD loss is 0 and QMIX's parameters do not move
    assert float(metrics["main/loss"]) == 0.0
    for a, b in zip(jax.tree.leaves(state.params["agent"]), jax.tree.leaves(state2.params["agent"])):
        np.testing.assert_array_equal(a, b)
