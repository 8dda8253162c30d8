"""Target rules: at which joint action the TD(lambda) target bootstraps, and the reward it is built on.

`algo.bootstrap` picks greedy (§1.5: the target network at the greedy joint action, chosen by the online
network with `algo.double_q`) or sarsa (§8.2: at the stored next joint action). ME-IGM's soft target (§9.5) is
SARSA on a reward shifted by the policy's log-probability of the next joint action.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from jaxfactor.rl.policies import masked_argmax, take
from jaxfactor.structs import Episodes

if TYPE_CHECKING:
    from jaxfactor.algos.base import HParams, Params
    from jaxfactor.algos.factorised import Factorised


@dataclasses.dataclass(frozen=True)
class TargetRule:
    """What a TD(lambda) target bootstraps at and is built on; subclasses are the rules."""

    def bootstrap_actions(self, online_greedy: jax.Array, q_target: jax.Array, batch: Episodes) -> jax.Array:
        """The joint action [B, T, N] the target value is read at (online_greedy: the online argmax)."""
        raise NotImplementedError

    def reward(
        self, learner: Factorised, params: Params, batch: Episodes, hp: HParams, q: jax.Array, reward: jax.Array
    ) -> jax.Array:
        """The reward [B, T-1] the target is built on (q [B, T, N, A]: online utilities, stopped)."""
        return reward


@dataclasses.dataclass(frozen=True)
class Greedy(TargetRule):
    """§1.5: the target network at the greedy joint action; `double_q`: the online network picks that action."""

    double_q: bool = True

    def bootstrap_actions(self, online_greedy, q_target, batch):
        return online_greedy if self.double_q else masked_argmax(q_target, batch.avail)


@dataclasses.dataclass(frozen=True)
class Sarsa(TargetRule):
    """§8.2: bootstrap at the stored next joint action."""

    def bootstrap_actions(self, online_greedy, q_target, batch):
        return batch.actions


@dataclasses.dataclass(frozen=True)
class SoftSarsa(Sarsa):
    """§9.5 (Eq. 12, App. A): r'_t = r_t - gamma (1 - d_t) alpha log pi_jt(u_{t+1} | s_{t+1}), bootstrapped at the
    stored next joint action: the soft TD(lambda) target. Reads the learner's `log_policy` and `log_alpha`."""

    def reward(self, learner: Any, params, batch, hp, q, reward):  # learner: ME-IGM's, with its policy
        log_pi = jax.lax.stop_gradient(learner.log_policy(params, q, batch.state, batch.avail))
        log_pi_joint = jnp.sum(take(log_pi, batch.actions), axis=-1)
        alpha = jax.lax.stop_gradient(jnp.exp(params["log_alpha"]))
        return soft_rewards(reward, batch.terminal[:, :-1], log_pi_joint[:, 1:], alpha, hp.gamma)


def soft_rewards(
    reward: jax.Array, terminal: jax.Array, log_pi_next: jax.Array, alpha: jax.Array, gamma: jax.Array | float
) -> jax.Array:
    """§9.5 (Eq. 12, App. A): r'_t = r_t - gamma (1 - d_t) alpha log pi_jt(u_{t+1} | s_{t+1}); fed to the
    §1.5 recursion with Qbar_t = target Q_tot at the stored u_t, this gives the soft TD(lambda) target."""
    return reward - gamma * (1.0 - terminal.astype(jnp.float32)) * alpha * log_pi_next


def from_config(bootstrap: str, double_q: bool) -> TargetRule:
    """The rule `algo.bootstrap` / `algo.double_q` name (validated before: greedy or sarsa)."""
    return Sarsa() if bootstrap == "sarsa" else Greedy(double_q=double_q)
