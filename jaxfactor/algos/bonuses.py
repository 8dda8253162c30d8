"""Bonus rewards as components: RND (ALGORITHMS.md §8.3)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from jaxfactor.algos.base import Params, Stage
from jaxfactor.algos.components import BONUSES, BonusReward, Carry, masked_mean
from jaxfactor.networks.entropy import RNDNetwork
from jaxfactor.settings import setting
from jaxfactor.structs import Episodes


def update_moments(stats: dict, x: jax.Array, mask: jax.Array) -> dict:
    """Running mean / sum of squared deviations (parallel Welford) over the valid entries of x."""
    n = mask.sum()
    mean = jnp.sum(mask * x) / jnp.maximum(n, 1.0)
    m2 = jnp.sum(mask * (x - mean) ** 2)
    total = stats["count"] + n
    delta = mean - stats["mean"]
    return {
        "count": total,
        "mean": stats["mean"] + delta * n / total,
        "m2": stats["m2"] + m2 + delta**2 * stats["count"] * n / total,
    }


@BONUSES.register("rnd")
@dataclasses.dataclass(frozen=True)
class RND(BonusReward):
    """§8.3: r_int_t = |f^(s_{t+1}) - f-(s_{t+1})|^2 / 64 with the current predictor, divided by a running standard
    deviation; y is built on r_ext + beta r_int; then the predictor regresses onto the frozen target (own Adam)."""

    rnd_coef: float = setting(0.1, low=0.0)
    """beta."""
    rnd_lr: float = setting(5e-4, low=1e-12)
    """Adam learning rate of the predictor."""

    def init_params(self, keys, learner) -> Params:
        state = jnp.zeros((1, learner.spec.state_dim))  # the target is never trained: no stage owns it
        return {"rnd_target": RNDNetwork().init(keys[0], state), "rnd_predictor": RNDNetwork().init(keys[1], state)}

    def init_stats(self) -> dict:
        return {"count": jnp.array(1e-4), "mean": jnp.array(0.0), "m2": jnp.array(1e-4)}  # var 1 prior

    def error(self, params: Params, batch: Episodes) -> jax.Array:
        next_state = batch.state[:, 1:]  # s_{t+1} for t = 0..T-2
        target = jax.lax.stop_gradient(RNDNetwork().apply(params["rnd_target"], next_state))
        return jnp.mean((RNDNetwork().apply(params["rnd_predictor"], next_state) - target) ** 2, axis=-1)

    def stages(self, learner, optimizer) -> tuple[Stage, ...]:
        def prepare(params, target_params, batch, hp, carry: Carry) -> Carry:
            error = jax.lax.stop_gradient(self.error(params, batch))
            stats = update_moments(carry.stats, error, batch.mask)
            std = jnp.sqrt(stats["m2"] / stats["count"] + 1e-8)
            return carry.replace(stats=stats, intrinsic_reward=batch.mask * error / std)

        def loss(params, target_params, batch, hp, key, carry: Carry):
            loss = masked_mean(self.error(params, batch), batch.mask)
            return loss, ({"intrinsic_reward": masked_mean(carry.intrinsic_reward, batch.mask)}, carry)

        rnd_lr = self.rnd_lr
        return (
            Stage(
                name="rnd",
                owns=("rnd_predictor",),
                loss=loss,
                optimizer=optimizer,
                learning_rate=lambda hp: jnp.asarray(rnd_lr, jnp.float32),
                prepare=prepare,
            ),
        )

    def reward(self, batch: Episodes, carry: Carry) -> jax.Array:
        return batch.reward[:, :-1] + self.rnd_coef * carry.intrinsic_reward
