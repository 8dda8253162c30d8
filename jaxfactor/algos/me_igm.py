"""ME-IGM (ALGORITHMS.md §9): maximum-entropy exploration that keeps IGM, on QMIX or QPLEX.

Policy (Eq. 10): pi_i = softmax(OPT_i(Q_i, s) / alpha) over available actions, sampled in training
rollouts (no epsilon); evaluation is greedy on the utilities, the same action since OPT preserves
order (§9.3). Per gradient step (§9.6): the critic on the soft TD(lambda) target (Eq. 8, 12), then
the OPT regression (Eq. 9) with the freshly updated critic, then the temperature (Eq. 11); hard
target copy every `target_update_episodes`.
"""

from __future__ import annotations

import dataclasses
import functools

import distrax
import jax
import jax.numpy as jnp
from flax import struct

from jaxfactor.algos.base import ActorState, Algorithm, Params, Stage, adam_clipped
from jaxfactor.algos.components import Carry, JointValues, masked_mean
from jaxfactor.algos.factorised import Factorised, make_factorised, mixer_settings, take
from jaxfactor.algos.registry import ALGOS
from jaxfactor.algos.target_rules import SoftSarsa
from jaxfactor.errors import ConfigError
from jaxfactor.networks.entropy import OrderPreservingTransform
from jaxfactor.rl.policies import masked_argmax
from jaxfactor.settings import check_mixer, read, reject_unknown, setting
from jaxfactor.structs import Timestep

ESTIMATORS = ("exact", "buffer_action")
UNAVAILABLE_LOGIT = -1e10  # §9.3


@struct.dataclass
class PolicyInputs:
    """Stopped inputs of the OPT and temperature stages, from the critic just updated (§9.6)."""

    q: jax.Array
    q_tot: jax.Array
    entropy: jax.Array | None = None


class MaxEntropyFactorised(Factorised):
    """The factorised learner plus OPT networks, a temperature and the softmax behaviour policy."""

    def __init__(self, cfg, spec, inputs, mixer, variant, *, settings: MaxEntropySettings, **components):
        super().__init__(cfg, spec, inputs, mixer, variant, **components)
        self.opt = OrderPreservingTransform(
            num_agents=self.spec.num_agents,
            layers=settings.opt_layers,
            embed_dim=settings.opt_embed_dim,
            hypernet_dim=self.cfg.hypernet_embed_dim,
        )
        self.target_entropy = settings.target_entropy * self.spec.num_agents  # H-bar = (per agent) x n
        self.alpha_init, self.alpha_lr = settings.alpha_init, settings.alpha_lr
        self.entropy_estimator = settings.entropy_estimator

    def init_params(self, key: jax.Array) -> Params:
        k_base, k_opt = jax.random.split(key)
        params = super().init_params(k_base)
        N, A, G = self.spec.num_agents, self.spec.num_actions, self.spec.state_dim
        params["opt"] = self.opt.init(k_opt, jnp.zeros((1, N, A)), jnp.zeros((1, G)))
        params["log_alpha"] = jnp.log(jnp.asarray(self.alpha_init, jnp.float32))
        return params

    def log_policy(self, params: Params, q: jax.Array, state: jax.Array, avail: jax.Array) -> jax.Array:
        """log pi_i(. | tau_i, s) [..., N, A] (Eq. 10), unavailable actions at logit -1e10."""
        logits = self.opt.apply(params["opt"], q, state) / jnp.exp(params["log_alpha"])
        return jax.nn.log_softmax(jnp.where(avail, logits, UNAVAILABLE_LOGIT), axis=-1)

    # ---- losses (§9.4): the critic's is the factorised main loss under the soft target rule ----------
    def opt_prepare(self, params, target_params, batch, hp, carry: Carry) -> Carry:
        """Stopped inputs of L(phi) from the critic just updated (§9.6)."""
        q = jax.lax.stop_gradient(self.utilities(params["agent"], batch))
        q_tot = self.mix(params["mixer"], q, batch.actions, batch.state, batch.avail)[:, :-1]
        return carry.replace(prepared=PolicyInputs(q=q, q_tot=jax.lax.stop_gradient(q_tot)))

    def opt_loss(self, params, target_params, batch, hp, key, carry):
        """Eq. 9: (sum_i OPT_i(sg Q_i, s)_{u_i} - sg Q_tot(s, u))^2 over valid transitions."""
        opt = self.opt.apply(params["opt"], carry.prepared.q[:, :-1], batch.state[:, :-1])
        summed = jnp.sum(take(opt, batch.actions[:, :-1]), axis=-1)
        return masked_mean((summed - carry.prepared.q_tot) ** 2, batch.mask), ({}, carry)

    def temperature_prepare(self, params, target_params, batch, hp, carry: Carry) -> Carry:
        log_pi = jax.lax.stop_gradient(self.log_policy(params, carry.prepared.q, batch.state, batch.avail))[:, :-1]
        if self.entropy_estimator == "exact":  # H_jt = sum_i H(pi_i), the joint entropy factorises (§9.4)
            entropy = -jnp.sum(jnp.exp(log_pi) * log_pi, axis=(-2, -1))
        else:  # literal Eq. 11: -log pi_jt at the stored actions
            entropy = -jnp.sum(take(log_pi, batch.actions[:, :-1]), axis=-1)
        return carry.replace(prepared=carry.prepared.replace(entropy=entropy))

    def temperature_loss(self, params, target_params, batch, hp, key, carry):
        """Eq. 11: L(omega) = alpha (sg H_jt - H-bar): alpha shrinks while the policy is too random."""
        entropy = masked_mean(carry.prepared.entropy, batch.mask)
        alpha = jnp.exp(params["log_alpha"])
        return alpha * (entropy - self.target_entropy), ({"entropy": entropy, "alpha": alpha}, carry)

    # ---- acting (§9.3) -----------------------------------------------------------------------
    def schedule(self, state) -> dict:
        """No schedule: training samples from the softmax policy, never epsilon-greedy (the eps keys are unused)."""
        return {}

    def act(
        self, params: Params, actor_state: ActorState, ts: Timestep, key: jax.Array, schedule: dict, greedy: bool
    ) -> tuple[jax.Array, ActorState]:
        hidden, q = self.step_utilities(params["agent"], actor_state, ts)
        if greedy:
            actions = masked_argmax(q, ts.avail)
        else:
            logits = self.log_policy(params, q, ts.state, ts.avail)
            actions = distrax.Categorical(logits=logits).sample(seed=key).astype(jnp.int32)
        return actions, actor_state.replace(hidden=hidden, last_action=actions)

    def joint_values(self, params: Params, ts: Timestep, joint: jax.Array) -> JointValues:
        """The factorised values plus the behaviour policy pi_i(. | first step) [N, A]."""
        values = super().joint_values(params, ts, joint)
        q = values.shared["utilities"]
        policy = jnp.exp(self.log_policy(params, q[None], ts.state[None], ts.avail[None]))[0]
        return JointValues(per_joint=values.per_joint, shared={**values.shared, "policy": policy})

    def build(self, name: str) -> Algorithm:
        clip = adam_clipped(self.cfg.grad_clip, self.cfg.optimizer)
        alpha_lr = self.alpha_lr
        stages = (
            Stage(name="main", owns=("agent", "mixer"), loss=self.main_loss, optimizer=clip),
            Stage(name="opt", owns=("opt",), loss=self.opt_loss, optimizer=clip, prepare=self.opt_prepare),
            Stage(
                name="temperature",
                owns=("log_alpha",),
                loss=self.temperature_loss,
                optimizer=clip,
                learning_rate=lambda hp: jnp.asarray(alpha_lr, jnp.float32),
                prepare=self.temperature_prepare,
            ),
        )
        algo = self.algorithm(name, stages)
        return dataclasses.replace(algo, extras={**algo.extras, "log_policy": self.log_policy})


@dataclasses.dataclass(frozen=True)
class MaxEntropySettings:
    opt_layers: int = setting(low=1, high=2)
    opt_embed_dim: int = setting(low=1)
    target_entropy: float = setting(low=0.0)
    """H-bar per agent."""
    alpha_init: float = setting(low=1e-12)
    alpha_lr: float = setting(low=0.0)
    entropy_estimator: str = setting(choices=ESTIMATORS)


MIXERS = ("qmix", "qplex")


def make_me(cfg, spec, inputs) -> Algorithm:
    check_mixer(cfg, MIXERS)
    reject_unknown(cfg, (MaxEntropySettings, *mixer_settings(cfg)))
    settings = read(MaxEntropySettings, cfg)
    if cfg.bootstrap != "sarsa":
        raise ConfigError(
            f"algo '{cfg.name}' bootstraps its soft target at the stored next action (§9.5); "
            f"got algo.bootstrap={cfg.bootstrap}; allowed: sarsa"
        )
    learner = make_factorised(
        cfg, spec, inputs, cls=functools.partial(MaxEntropyFactorised, settings=settings), target=SoftSarsa()
    )
    return learner.build(cfg.name)


for _mixer in MIXERS:  # `algo=me_qmix algo.mixer=qplex` is me_qplex
    ALGOS.register(f"me_{_mixer}")(make_me)
