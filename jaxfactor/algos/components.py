"""The pieces a factorised learner composes (issue 20): a weighting of the TD loss and a bonus reward, each a
small frozen dataclass whose fields are its settings (read by `jaxfactor.settings`), registered by name.

A new weighting or bonus is a subclass registered in `WEIGHTINGS` / `BONUSES`, from any module: no package file
changes. Both may own parameter groups and add loss stages that run before the main TD stage on the same batch
(POW's recogniser, RND's predictor); they talk to the main stage through the typed `Carry`, and weightings read
the typed `TDContext`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxfactor.registry import Registry
from jaxfactor.structs import Episodes

if TYPE_CHECKING:
    from jaxfactor.algos.base import Params, Stage
    from jaxfactor.algos.factorised import Factorised


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over valid transitions: the normaliser is sum(m), never the sum of weights (§1.6)."""
    return jnp.sum(mask * x) / jnp.maximum(mask.sum(), 1.0)


@struct.dataclass
class TDContext:
    """What the TD losses and weightings read (ALGORITHMS.md §1.4–1.6); only `q` and `q_tot` carry gradients."""

    q: jax.Array
    """Online utilities [B, T, N, A]."""
    q_tot: jax.Array
    """Q_tot of the stored joint actions [B, T-1]."""
    y: jax.Array
    """TD(lambda) targets [B, T-1] (§1.5)."""
    q_bar: jax.Array
    """Bootstrap values [B, T] (target Q_tot or Q-hat-star at the bootstrap action)."""
    mask: jax.Array
    """Valid transitions [B, T-1]."""
    greedy: jax.Array
    """Online greedy joint action per slot [B, T, N]."""
    is_greedy_joint: jax.Array
    """The stored joint action is the online greedy one [B, T-1]."""
    advantages: jax.Array
    """Per-agent Q_i(u_i) - max Q_i [B, T-1, N]."""


@struct.dataclass
class Carry:
    """Handed from stage to stage within one update (`Stage.prepare` returns a new one)."""

    t_env: jax.Array
    stats: Any = ()
    """Running statistics the components own (`LearnerState.stats`)."""
    intrinsic_reward: jax.Array | None = None
    """From a bonus stage: r_int [B, T-1]."""
    weights: jax.Array | None = None
    """From an earlier stage: TD weights [B, T-1] that replace the learner's weighting."""
    prepared: Any = None
    """What the current stage's `prepare` computed once for its inner steps."""


Optimizer = Callable[[float], Any]


@struct.dataclass
class JointValues:
    """A learner's values at one state for a batch of J joint actions (`Algorithm.joint_values`).

    `per_joint` entries end in the joint-action axis [..., J] (Q_tot, Q-hat-star, POW's Q_r, S2Q's sub-value
    Q_tot [K+1, J]); `shared` entries do not depend on the joint action (utilities [N, A], greedy actions [N],
    V_r, ME-IGM's policy [N, A])."""

    per_joint: dict[str, Any]  # arrays (Any: flax's `apply` is typed as a union)
    shared: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Weighting:
    """w of the weighted TD loss L = c sum m w (Q_tot - y)^2 / sum m (§1.6). Fields are settings."""

    def init_params(self, key: jax.Array, learner: Factorised) -> Params:
        """Parameter groups this weighting owns (none by default)."""
        return {}

    def stages(self, learner: Factorised, optimizer: Optimizer) -> tuple[Stage, ...]:
        """Stages run before the main stage (POW's recogniser); the main stage sees their updated parameters."""
        return ()

    def weights(
        self, learner: Factorised, params: Params, ctx: TDContext, batch: Episodes, t_env: jax.Array
    ) -> jax.Array:
        """-> w [B, T-1]; the learner stops its gradient."""
        raise NotImplementedError

    def inspect(
        self, learner: Factorised, params: Params, state: jax.Array, joint: jax.Array, advantages: jax.Array
    ) -> JointValues:
        """What this weighting adds to `Algorithm.joint_values` (state [J, G], joint [J, N], advantages [J, N])."""
        return JointValues(per_joint={}, shared={})


@dataclasses.dataclass(frozen=True)
class BonusReward:
    """An intrinsic reward added to the TD target's reward. Fields are settings."""

    def init_params(self, keys: jax.Array, learner: Factorised) -> Params:
        """Parameter groups this bonus owns; `keys` holds two PRNG keys."""
        return {}

    def init_stats(self) -> Any:
        return ()

    def stages(self, learner: Factorised, optimizer: Optimizer) -> tuple[Stage, ...]:
        """Stages run first in each update; a stage's `prepare` may set `Carry.intrinsic_reward`."""
        return ()

    def reward(self, batch: Episodes, carry: Carry) -> jax.Array:
        """-> the reward [B, T-1] the TD target is built on."""
        raise NotImplementedError


WEIGHTINGS: Registry[type[Weighting]] = Registry("algo.weighting")
BONUSES: Registry[type[BonusReward]] = Registry("algo.bonus")
