"""The TD-loss weightings of the papers as components: uniform (§1.6), CW and OW (§5.4), POW (§6.3–6.6)."""

from __future__ import annotations

import dataclasses
from typing import cast

import jax
import jax.numpy as jnp
from flax import struct

from jaxfactor.algos.base import Params, Stage
from jaxfactor.algos.components import WEIGHTINGS, Carry, JointValues, TDContext, Weighting, masked_mean
from jaxfactor.networks.recognition import RecognitionQr
from jaxfactor.rl.weighting import central_weights, optimistic_weights, potentially_optimal_weights
from jaxfactor.settings import setting
from jaxfactor.structs import Episodes


@WEIGHTINGS.register("uniform")
@dataclasses.dataclass(frozen=True)
class Uniform(Weighting):
    """w = 1: the unweighted loss of VDN, QMIX and QPLEX."""

    def weights(self, learner, params, ctx: TDContext, batch, t_env):
        return jnp.ones_like(ctx.mask)


@WEIGHTINGS.register("cw")
@dataclasses.dataclass(frozen=True)
class Central(Weighting):
    """CW (§5.4): 1 where the stored joint action is greedy or y > Q-hat-star^-(greedy), else alpha."""

    alpha: float = setting(0.1, low=0.0, high=1.0)

    def weights(self, learner, params, ctx: TDContext, batch, t_env):
        return central_weights(ctx.is_greedy_joint, ctx.y, ctx.q_bar[:, :-1], self.alpha)


@WEIGHTINGS.register("ow")
@dataclasses.dataclass(frozen=True)
class Optimistic(Weighting):
    """OW (§5.4): 1 where Q_tot < y (under-estimated), else alpha."""

    alpha: float = setting(0.1, low=0.0, high=1.0)

    def weights(self, learner, params, ctx: TDContext, batch, t_env):
        return optimistic_weights(ctx.q_tot, ctx.y, self.alpha)


@struct.dataclass
class RecognitionInputs:
    """The recogniser's regression inputs, computed once per update before its inner steps (stopped)."""

    y: jax.Array
    advantages: jax.Array


@WEIGHTINGS.register("pow")
@dataclasses.dataclass(frozen=True)
class PotentiallyOptimal(Weighting):
    """POW (§6.3): w = 1 on P(s) = {u : |Q_r(s, u) - V_r(s)| < eps_r}, alpha outside, 1 during the warm-up (§6.6).
    Its recogniser Q_r owns a stage (§6.5 L_r, §6.6 step 3): `pow_first_steps` Adam steps on the first update,
    `pow_steps` after, on the same batch with stopped inputs, before the main step."""

    alpha: float = setting(0.0, low=0.0, high=1.0)
    pow_tolerance: float = setting(0.1, low=0.0)
    pow_steps: int = setting(10, low=1)
    pow_first_steps: int = setting(20, low=1)
    pow_warmup_steps: int = setting(0, low=0)

    def init_params(self, key, learner) -> Params:
        N, A, G = learner.spec.num_agents, learner.spec.num_actions, learner.spec.state_dim
        return {"recognition": RecognitionQr().init(key, jnp.zeros((1, G)), jnp.zeros((1, N, A)), jnp.zeros((1, N)))}

    def recognition_values(self, learner, params: Params, batch: Episodes, advantages: jax.Array):
        onehot = jax.nn.one_hot(batch.actions[:, :-1], learner.spec.num_actions)
        return RecognitionQr().apply(params["recognition"], batch.state[:, :-1], onehot, advantages)

    def stages(self, learner, optimizer) -> tuple[Stage, ...]:
        def prepare(params, target_params, batch, hp, carry: Carry) -> Carry:
            ctx = learner.td_context(params, target_params, batch, hp)
            return carry.replace(prepared=RecognitionInputs(y=ctx.y, advantages=jax.lax.stop_gradient(ctx.advantages)))

        def loss(params, target_params, batch, hp, key, carry: Carry):
            q_r, _ = self.recognition_values(learner, params, batch, carry.prepared.advantages)
            return 0.5 * masked_mean((q_r - carry.prepared.y) ** 2, batch.mask), ({}, carry)

        return (
            Stage(
                name="recognition",
                owns=("recognition",),
                loss=loss,
                optimizer=optimizer,
                steps=self.pow_steps,
                first_steps=self.pow_first_steps,
                prepare=prepare,
            ),
        )

    def weights(self, learner, params, ctx: TDContext, batch, t_env):
        # With the recogniser as just updated by its own stage (§6.6 step 4).
        q_r, v_r = self.recognition_values(learner, params, batch, ctx.advantages)
        w = potentially_optimal_weights(q_r, v_r, self.pow_tolerance, self.alpha)
        return jnp.where(t_env <= self.pow_warmup_steps, 1.0, w)

    def inspect(self, learner, params, state, joint, advantages):
        recognise = RecognitionQr().apply(
            params["recognition"], state, jax.nn.one_hot(joint, learner.spec.num_actions), advantages
        )
        q_r, v_r = cast(tuple[jax.Array, jax.Array], recognise)  # flax types `apply` as a union
        return JointValues(per_joint={"q_r": q_r}, shared={"v_r": v_r[0]})
