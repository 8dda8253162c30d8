"""S2Q, successive sub-value Q-learning (ALGORITHMS.md §7), with the sub-values as one axis of any size.

K+1 sub-value functions (own agent network and monotone base mixer each, parameters stacked on a
leading axis and `vmap`ped) share the OW-QMIX-style target bootstrapped through an unrestricted
central Q-hat-star (E_c = 256). Sub-value k is trained on a target in which the joint actions greedy
for sub-values 0..k-1 are suppressed (§7.3), so its greedy joint action is the k-th best; a softmax
over the Q-hat-star values of the K+1 greedy joint actions, predicted from local histories by an
encoder-decoder (§7.5), picks which sub-value all agents of an env follow (§7.7). One Adam step on
the total loss of §7.6; evaluation is greedy on sub-value 0.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfactor.algos.base import ActorState, Algorithm, Params, Stage, adam_clipped
from jaxfactor.algos.components import JointValues, masked_mean
from jaxfactor.algos.factorised import Factorised, Variant, make_factorised, mixer_settings, previous_actions, take
from jaxfactor.algos.registry import ALGOS
from jaxfactor.networks.agent import agent_inputs
from jaxfactor.networks.layers import MLP, TorchDense
from jaxfactor.rl.policies import epsilon_greedy, masked_argmax
from jaxfactor.rl.targets import td_lambda_targets
from jaxfactor.settings import check_mixer, read, reject_unknown, setting
from jaxfactor.structs import Episodes, Timestep

ABLATIONS = ("none", "oracle", "independent", "no_wtd", "no_softmax", "random")
LATENT_DIM = 32


class Encoder(nn.Module):
    """E_psi: MLP[64n -> 64 -> 64 -> 32] on the concatenated sub-value-0 GRU states (§7.1)."""

    @nn.compact
    def __call__(self, hidden: jax.Array) -> jax.Array:
        return MLP([64, 64, LATENT_DIM])(hidden)


class Decoder(nn.Module):
    """D_psi: trunk MLP[32 -> 64 -> 64] (ReLU after both), heads: state Lin[64 -> |s|], logits Lin[64 -> K+1]."""

    state_dim: int
    num_heads: int

    @nn.compact
    def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
        trunk = nn.relu(MLP([64, 64])(z))
        return TorchDense(self.state_dim)(trunk), TorchDense(self.num_heads)(trunk)


@dataclasses.dataclass(frozen=True)
class S2QSettings:
    central_embed_dim: int = setting(256, low=1)
    """E_c of the central Q-hat-star (§7.1)."""
    num_subvalues: int = setting(2, low=0)
    """K: extra sub-values beyond Q^(0) (K+1 heads)."""
    temperature: float = setting(0.1, low=0.0, low_open=True)
    """T_s of the softmax over the candidates' Q-hat-star values."""
    suppression: float = setting(1.0, low=0.0)
    """zeta of §7.3."""
    suppress_floor: float | None = setting(None)
    """c of phi(x) = max(x, c); None = no floor (the reference code)."""
    down_weight: float = setting(0.9, low=0.0, high=1.0)
    """w_c of §7.4."""
    p_fixed: float = setting(0.5, low=0.0, high=1.0)
    """Probability that an episode follows sub-value 0 throughout (§7.7)."""
    ablation: str = setting("none", choices=ABLATIONS)
    comm: bool = False
    """S2Q-Comm (§7.8): the latent z_t = E(sg h^(0)_{t-1}) is an input of every sub-value network (set by the
    algorithm name, not a key)."""


def suppressed_targets(
    y: jax.Array, executed: jax.Array, greedy: jax.Array, q_star: jax.Array, suppression: float, floor: float | None
) -> jax.Array:
    """§7.3: y^(k) = y - zeta 1[u_t in {greedy^(0..k-1)_t}] sg(phi(Q-hat-star_t)), y^(0) = y.

    y, q_star [B, T]; executed [B, T, N]; greedy [K+1, B, T, N] -> [K+1, B, T]."""
    same = jnp.all(greedy == executed[None], axis=-1)  # u_t == greedy^(j)_t
    earlier = (jnp.cumsum(same.astype(jnp.int32), axis=0) - same) > 0  # some j < k matches
    shift = jax.lax.stop_gradient(q_star if floor is None else jnp.maximum(q_star, floor))
    return y[None] - suppression * earlier * shift[None]


def subvalue_weights(
    q_star: jax.Array, candidates: jax.Array, q_tot: jax.Array, y_k: jax.Array, down_weight: float
) -> jax.Array:
    """§7.4: k = 0: 1 if Q-hat-star(u_t) >= max_k' Q-hat-star-(greedy^(k')), else w_c (CW-style);
    k >= 1: 1 if Q^(k)_tot(u_t) < y^(k)_t, else w_c (OW-style). Shapes [K+1, B, T] ([B, T] for q_star)."""
    w0 = jnp.where(q_star >= candidates.max(axis=0), 1.0, down_weight)
    wk = jnp.where(q_tot[1:] < y_k[1:], 1.0, down_weight)
    return jax.lax.stop_gradient(jnp.concatenate([w0[None], wk], axis=0))


def subvalue_index(key: jax.Array, logits: jax.Array, fixed: jax.Array, num_agents: int, ablation: str) -> jax.Array:
    """§7.7: which sub-value each agent follows this step. logits [E, K+1] of P-hat (or of the true P,
    oracle), fixed [E] (episode follows sub-value 0) -> index [E, N]: one draw shared by all agents of
    an env, except the ablations (independent draws per agent, uniform index, always 0)."""
    E, K1 = logits.shape
    if ablation == "independent":
        index = jax.random.categorical(key, logits[:, None, :], shape=(E, num_agents))
    elif ablation == "random":
        index = jnp.broadcast_to(jax.random.randint(key, (E, 1), 0, K1), (E, num_agents))
    elif ablation == "no_softmax":
        index = jnp.zeros((E, num_agents), jnp.int32)
    else:
        index = jnp.broadcast_to(jax.random.categorical(key, logits)[:, None], (E, num_agents))
    return jnp.where(fixed[:, None], 0, index).astype(jnp.int32)


class S2Q(Factorised):
    def __init__(self, cfg, spec, inputs, mixer, variant, *, settings: S2QSettings, **components):
        super().__init__(cfg, spec, inputs, mixer, variant, **components)
        self.settings = settings
        self.heads = settings.num_subvalues + 1
        self.encoder = Encoder()
        self.decoder = Decoder(state_dim=spec.state_dim, num_heads=self.heads)
        # Sub-value networks read z_t in S2Q-Comm; the central Q-hat-star never does.
        self.subvalue_input_dim = self.input_dim + (LATENT_DIM if settings.comm else 0)

    # ---- parameters ------------------------------------------------------------------------------
    def init_params(self, key: jax.Array) -> Params:
        k_sub, k_mix, k_central, k_enc, k_dec = jax.random.split(key, 5)
        H, N = self.cfg.agent_hidden_dim, self.spec.num_agents
        _, _, example = self.example_inputs()
        h, x = jnp.zeros((1, H)), jnp.zeros((1, self.subvalue_input_dim))
        heads = jax.random.split(k_sub, self.heads)
        return {
            "subvalue_agents": jax.vmap(lambda k: self.agent.init(k, h, x))(heads),
            "subvalue_mixers": jax.vmap(lambda k: self.mixer.init(k, example))(jax.random.split(k_mix, self.heads)),
            **self.init_central(jax.random.split(k_central, 7)),
            "encoder": self.encoder.init(k_enc, jnp.zeros((1, N * H))),
            "decoder": self.decoder.init(k_dec, jnp.zeros((1, LATENT_DIM))),
        }

    def target_groups(self) -> tuple[str, ...]:
        return ("central_agent", "central_mixer")

    def predicted_logits(self, params: Params, hidden0: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(s-hat, logits of P-hat) from sub-value-0 GRU states [..., N, H] (inputs stopped)."""
        flat = jax.lax.stop_gradient(hidden0).reshape(hidden0.shape[:-2] + (-1,))
        return self.decoder.apply(params["decoder"], self.encoder.apply(params["encoder"], flat))

    def with_latent(self, params: Params, x: jax.Array, hidden0: jax.Array) -> jax.Array:
        """S2Q-Comm input: x [..., N, D] || z from the previous sub-value-0 states [..., N, H] (inputs stopped;
        the encoder itself learns from the TD losses through z, §7.8)."""
        flat = jax.lax.stop_gradient(hidden0).reshape(hidden0.shape[:-2] + (-1,))
        z = self.encoder.apply(params["encoder"], flat)
        return jnp.concatenate([x, jnp.broadcast_to(z[..., None, :], x.shape[:-1] + z.shape[-1:])], axis=-1)

    def subvalue_utilities(self, params: Params, batch: Episodes) -> tuple[jax.Array, jax.Array]:
        """All sub-values over stored episodes: (q [K+1, B, T, N, A], GRU states [K+1, B, T, N, H])."""
        if not self.settings.comm:
            return jax.vmap(lambda p: self.utilities_and_hidden(p, batch))(params["subvalue_agents"])
        x = agent_inputs(batch.obs, previous_actions(batch.actions, batch.starts), self.spec.num_actions, **self.flags)
        B, T, N, _ = x.shape
        h0 = jnp.zeros((self.heads, B, N, self.cfg.agent_hidden_dim))

        @jax.checkpoint  # as the agents' own unroll: keep only the carry per step for the backward pass
        def step(h, inputs):  # all heads advance together: z_t comes from sub-value 0's previous state
            x_t, reset_t = inputs
            h = jnp.where(reset_t[None, :, None, None], 0.0, h)  # an episode starts in this row (segments)
            x_t = self.with_latent(params, x_t, h[0])
            h, q = jax.vmap(lambda p, h_k: self.agent.apply(p, h_k, x_t))(params["subvalue_agents"], h)
            return h, (q, h)

        _, (q, hs) = jax.lax.scan(step, h0, (jnp.swapaxes(x, 0, 1), batch.starts.T))
        return jnp.moveaxis(q, 0, 2), jnp.moveaxis(hs, 0, 2)  # [T, K+1, B, ...] -> [K+1, B, T, ...]

    # ---- loss (§7.2-7.6) -------------------------------------------------------------------------
    def main_loss(self, params, target_params, batch: Episodes, hp, key, carry):
        del key
        s = self.settings
        q, hidden = self.subvalue_utilities(params, batch)
        greedy = masked_argmax(jax.lax.stop_gradient(q), batch.avail[None])  # [K+1, B, T, N]
        q_c = self.utilities(target_params["central_agent"], batch)
        candidates = jax.lax.stop_gradient(
            jax.vmap(
                lambda u: self.central.apply(
                    target_params["central_mixer"], self._mixer_input(take(q_c, u), batch.state)
                )
            )(greedy)
        )  # [K+1, B, T]
        q_star = self.central_value(params, batch, batch.actions)[:, :-1]  # online, at u_t
        y = jax.lax.stop_gradient(
            td_lambda_targets(
                batch.reward[:, :-1], batch.terminal[:, :-1], batch.mask, candidates[0], hp.gamma, hp.td_lambda
            )
        )
        y_k = suppressed_targets(y, batch.actions[:, :-1], greedy[:, :, :-1], q_star, s.suppression, s.suppress_floor)
        q_tot = jax.vmap(lambda mp, qk: self.mix(mp, qk, batch.actions, batch.state, batch.avail))(
            params["subvalue_mixers"], q
        )[:, :, :-1]  # [K+1, B, T-1]
        if s.ablation == "no_wtd":
            w = jnp.ones_like(q_tot)
        else:
            w = subvalue_weights(
                jax.lax.stop_gradient(q_star), candidates[:, :, :-1], jax.lax.stop_gradient(q_tot), y_k, s.down_weight
            )
        mask = batch.mask
        per_head = jax.vmap(lambda wk, qk, yk: masked_mean(wk * (qk - yk) ** 2, mask))(w, q_tot, y_k)
        central = masked_mean((q_star - y) ** 2, mask)
        # Encoder-decoder (§7.5): KL(P || P-hat) + MSE(s-hat, s) on valid transitions.
        target_p = jax.nn.softmax(jnp.moveaxis(candidates[:, :, :-1], 0, -1) / s.temperature, axis=-1)
        s_hat, logits = self.predicted_logits(params, hidden[0][:, :-1])
        log_p_hat = jax.nn.log_softmax(logits, axis=-1)
        kl = jnp.sum(target_p * (jnp.log(target_p + 1e-30) - log_p_hat), axis=-1)
        mse = jnp.mean((s_hat - batch.state[:, :-1]) ** 2, axis=-1)
        ed = masked_mean(kl, mask) + masked_mean(mse, mask)
        loss = self.cfg.loss_scale * (per_head.sum() + central) + ed
        metrics = {
            "td_loss_subvalue0": per_head[0],
            "central_loss": central,
            "ed_kl": masked_mean(kl, mask),
            "ed_state_mse": masked_mean(mse, mask),
            "target": masked_mean(y, mask),
            "weight": masked_mean(w[0], mask),
        }
        return loss, (metrics, carry)

    # ---- acting (§7.7) ---------------------------------------------------------------------------
    def initial_actor_state(self, num_envs: int) -> ActorState:
        N, H = self.spec.num_agents, self.cfg.agent_hidden_dim
        hidden = {"subvalues": jnp.zeros((num_envs, self.heads, N, H))}
        if self.settings.ablation == "oracle":
            hidden["central"] = jnp.zeros((num_envs, N, H))
        return ActorState(
            hidden=hidden,
            last_action=jnp.full((num_envs, N), -1, jnp.int32),
            policy_state={"fixed": jnp.zeros((num_envs,), bool)},
        )

    def init_policy_state(self, key: jax.Array, num_envs: int) -> dict:
        """Per env and episode: follow sub-value 0 throughout with probability p_fixed."""
        return {"fixed": jax.random.bernoulli(key, self.settings.p_fixed, (num_envs,))}

    def step_subvalues(self, params: Params, actor_state: ActorState, ts: Timestep) -> Any:
        """One recurrent step of every sub-value head for E envs. -> (hidden, q [E, K+1, N, A])."""
        x = agent_inputs(ts.obs, actor_state.last_action, self.spec.num_actions, **self.flags)
        if self.settings.comm:  # communication at execution too
            x = self.with_latent(params, x, actor_state.hidden["subvalues"][:, 0])
        return jax.vmap(lambda p, h: self.agent.apply(p, h, x), in_axes=(0, 1), out_axes=1)(
            params["subvalue_agents"], actor_state.hidden["subvalues"]
        )  # [E, K+1, N, H/A]

    def act(
        self, params: Params, actor_state: ActorState, ts: Timestep, key: jax.Array, schedule: dict, greedy: bool
    ) -> tuple[jax.Array, ActorState]:
        s = self.settings
        hidden, q = self.step_subvalues(params, actor_state, ts)
        new_hidden = {**actor_state.hidden, "subvalues": hidden}
        if greedy:  # test: sub-value 0, no encoder, no communication
            actions = masked_argmax(q[:, 0], ts.avail)
            return actions, actor_state.replace(hidden=new_hidden, last_action=actions)
        k_index, k_eps = jax.random.split(key)
        N = q.shape[2]
        if s.ablation == "oracle":  # the true softmax of §7.5 with the online Q-hat-star (acting has no target)
            h_c, q_c = self.step_utilities(
                params["central_agent"], actor_state.replace(hidden=actor_state.hidden["central"]), ts
            )
            new_hidden["central"] = h_c
            greedy_k = masked_argmax(q, ts.avail[:, None])  # [E, K+1, N]
            values = jax.vmap(
                lambda u: self.central.apply(params["central_mixer"], self._mixer_input(take(q_c, u), ts.state)),
                in_axes=1,
                out_axes=1,
            )(greedy_k)
            logits = values / s.temperature
        else:
            logits = self.predicted_logits(params, hidden[:, 0])[1]  # [E, K+1]
        index = subvalue_index(k_index, logits, actor_state.policy_state["fixed"], N, s.ablation)
        q_followed = jnp.take_along_axis(q, index[:, None, :, None], axis=1)[:, 0]  # [E, N, A]
        actions = epsilon_greedy(k_eps, q_followed, ts.avail, schedule["epsilon"])
        return actions, actor_state.replace(hidden=new_hidden, last_action=actions)

    # ---- inspection ------------------------------------------------------------------------------
    def joint_values(self, params: Params, ts: Timestep, joint: jax.Array) -> JointValues:
        """Per sub-value utilities, greedy actions and Q^(k)_tot [K+1, J] (k = 0 the main value); Q-hat-star."""
        batched = jax.tree.map(lambda x: x[None], ts)
        q = self.step_subvalues(params, self.initial_actor_state(1), batched)[1][0]  # [K+1, N, A]
        J, (N, A) = joint.shape[0], q.shape[1:]
        state = jnp.broadcast_to(ts.state, (J, ts.state.shape[-1]))
        avail = jnp.broadcast_to(ts.avail, (J, N, A))
        q_tot = jax.vmap(lambda mp, qk: self.mix(mp, jnp.broadcast_to(qk, (J, N, A)), joint, state, avail))(
            params["subvalue_mixers"], q
        )
        q_star = self.joint_q_star(params, ts, joint, state)
        greedy = masked_argmax(q, ts.avail[None])
        return JointValues(
            per_joint={"q_tot": q_tot[0], "subvalue_q_tot": q_tot, "q_star": q_star},
            shared={"utilities": q[0], "greedy": greedy[0], "subvalue_greedy": greedy},
        )

    def build(self, name: str) -> Algorithm:
        stage = Stage(
            name="main",
            owns=("subvalue_agents", "subvalue_mixers", "central_agent", "central_mixer", "encoder", "decoder"),
            loss=self.main_loss,
            optimizer=adam_clipped(self.cfg.grad_clip, self.cfg.optimizer),
        )
        algo = self.algorithm(name, (stage,))
        return dataclasses.replace(algo, init_policy_state=self.init_policy_state)


MIXERS = ("qmix", "vdn", "qplex")


def make_s2q(cfg, spec, inputs, *, comm: bool = False) -> Algorithm:
    check_mixer(cfg, MIXERS)
    reject_unknown(cfg, (S2QSettings, *mixer_settings(cfg)))
    settings = read(S2QSettings, cfg, comm=comm)
    learner = make_factorised(
        cfg,
        spec,
        inputs,
        Variant(central_embed_dim=settings.central_embed_dim),
        cls=functools.partial(S2Q, settings=settings),
    )
    return learner.build(cfg.name)


for _name in ("s2q", "s2q_vdn", "s2q_qplex"):  # `algo=s2q algo.mixer=vdn` is s2q_vdn
    ALGOS.register(_name)(make_s2q)
ALGOS.register("s2q_comm")(functools.partial(make_s2q, comm=True))
