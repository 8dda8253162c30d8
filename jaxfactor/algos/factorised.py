"""The shared factorised TD learner: recurrent agent + mixer + TD(lambda) (ALGORITHMS.md §1–6).

Every value-factorisation algorithm composes this one learner from the mixer (VDN, QMIX, QPLEX), an optional
unrestricted central Q-hat-star that bootstraps the target (`Variant`; WQMIX §5, POW §6), a `Weighting` of the TD
loss (uniform, CW, OW, POW with its recognition stage; `weightings.py`) and an optional `BonusReward` (RND;
`bonuses.py`). Loss (§1.6): L = c * sum m w (Q_tot - sg(y))^2 / sum m  [+ c* sum m (Q* - sg(y))^2 / sum m],
with y the §1.5 TD(lambda) target of a greedy (double-Q) or SARSA bootstrap.
"""

from __future__ import annotations

import dataclasses
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfactor.algos import target_rules
from jaxfactor.algos.base import ActorState, Algorithm, HParams, LearnerState, Params, Stage, adam_clipped
from jaxfactor.algos.components import BonusReward, Carry, JointValues, TDContext, Weighting, masked_mean
from jaxfactor.algos.target_rules import Greedy, TargetRule
from jaxfactor.algos.weightings import Uniform
from jaxfactor.config import AlgoConfig
from jaxfactor.errors import ConfigError
from jaxfactor.networks.agent import RecurrentQAgent, agent_inputs, input_dim, unroll
from jaxfactor.networks.mixers import CentralMixer, MixerInput, make_mixer
from jaxfactor.rl.policies import epsilon_greedy, linear_epsilon, masked_argmax, masked_max, take  # noqa: F401 (take: re-exported)
from jaxfactor.rl.targets import td_lambda_targets
from jaxfactor.settings import read, setting
from jaxfactor.spec import AgentInputs
from jaxfactor.structs import EnvSpec, Episodes, Timestep


@dataclasses.dataclass(frozen=True)
class Variant:
    """The central value of a factorised algorithm (static); the weighting and bonus are components."""

    central_embed_dim: int | None = None
    """Width E_c of the central Q-hat-star (B3); None = no central value, bootstrap through the target mixer."""
    central_loss_scale: float = 0.5
    """c of the Q-hat-star loss (PyMARL2 and POW: 1/2)."""


@dataclasses.dataclass(frozen=True)
class QplexMixer:
    """Settings of the QPLEX mixer (read only when algo.mixer=qplex)."""

    adv_hypernet_layers: int = setting(2, low=2)
    """Layers of the kappa/alpha/beta MLPs (PyMARL2 QPLEX: 2)."""


def mixer_settings(cfg: AlgoConfig) -> tuple[type, ...]:
    """Settings classes of the configured mixer."""
    return (QplexMixer,) if cfg.mixer == "qplex" else ()


def previous_actions(actions: jax.Array, starts: jax.Array) -> jax.Array:
    """u_{t-1} per slot, -1 (all-zero one-hot) at slot 0 and where an episode starts (`Episodes.starts` [B, T]).
    actions [B, T, N] -> [B, T, N]."""
    previous = jnp.concatenate([jnp.full_like(actions[:, :1], -1), actions[:, :-1]], axis=1)
    return jnp.where(starts[..., None], -1, previous)


class Factorised:
    """Components of a factorised value learner for one env spec; builds the `Algorithm`."""

    def __init__(
        self,
        cfg: AlgoConfig,
        spec: EnvSpec,
        inputs: AgentInputs,
        mixer: nn.Module,
        variant: Variant = Variant(),
        weighting: Weighting = Uniform(),
        bonus: BonusReward | None = None,
        target: TargetRule | None = None,
    ):
        self.target = target_rules.from_config(cfg.bootstrap, cfg.double_q) if target is None else target
        if variant.central_embed_dim and self.target != Greedy(double_q=True):
            # §1.4/§5.3: the central target is always Q-hat-star^- at the ONLINE greedy joint action.
            raise ConfigError(
                f"algo '{cfg.name}' bootstraps through its central Q-hat-star at the online greedy "
                f"action; got algo.bootstrap={cfg.bootstrap}, algo.double_q={cfg.double_q}; "
                "allowed: bootstrap=greedy with double_q=true"
            )
        self.cfg, self.spec, self.variant, self.weighting, self.bonus = cfg, spec, variant, weighting, bonus
        self.flags = dataclasses.asdict(inputs)
        self.agent = RecurrentQAgent(hidden_dim=cfg.agent_hidden_dim, num_actions=spec.num_actions)
        self.mixer = mixer
        self.central = CentralMixer(variant.central_embed_dim) if variant.central_embed_dim else None
        self.input_dim = input_dim(spec.obs_dim, spec.num_agents, spec.num_actions, **self.flags)

    # ---- networks ------------------------------------------------------------------------------
    def _mixer_input(self, qs, state, q_max=None, actions=None) -> MixerInput:
        onehot = None if actions is None else jax.nn.one_hot(actions, self.spec.num_actions)
        return MixerInput(qs=qs, state=state, q_max=q_max, actions_onehot=onehot)

    def example_inputs(self) -> tuple[jax.Array, jax.Array, MixerInput]:
        """(GRU state, agent input, mixer input) of batch 1, for initialising networks."""
        H, N, G = self.cfg.agent_hidden_dim, self.spec.num_agents, self.spec.state_dim
        example = self._mixer_input(
            jnp.zeros((1, N)), jnp.zeros((1, G)), jnp.zeros((1, N)), jnp.zeros((1, N), jnp.int32)
        )
        return jnp.zeros((1, H)), jnp.zeros((1, self.input_dim)), example

    def init_central(self, keys: jax.Array) -> Params:
        """Q-hat-star's own agent network (same architecture) and feed-forward mixer, from keys[2] and keys[3] of
        the learner's 7-way split."""
        h, x, example = self.example_inputs()
        return {"central_agent": self.agent.init(keys[2], h, x), "central_mixer": self.central.init(keys[3], example)}

    def init_params(self, key: jax.Array) -> Params:
        keys = jax.random.split(key, 7)
        h, x, example = self.example_inputs()
        params = {"agent": self.agent.init(keys[0], h, x), "mixer": self.mixer.init(keys[1], example)}
        if self.central is not None:
            params.update(self.init_central(keys))
        params.update(self.weighting.init_params(keys[4], self))
        if self.bonus is not None:
            params.update(self.bonus.init_params(keys[5:7], self))
        return params

    def target_groups(self) -> tuple[str, ...]:
        return ("agent", "mixer") + (("central_agent", "central_mixer") if self.central is not None else ())

    def utilities(self, agent_params: Any, batch: Episodes) -> jax.Array:
        """Unroll an agent network over stored rows from a zero state (restarting where an episode starts).
        -> q [B, T, N, A]."""
        return self.utilities_and_hidden(agent_params, batch)[0]

    def utilities_and_hidden(self, agent_params: Any, batch: Episodes) -> tuple[jax.Array, jax.Array]:
        """-> (q [B, T, N, A], GRU states after consuming o_t [B, T, N, H])."""
        x = agent_inputs(batch.obs, previous_actions(batch.actions, batch.starts), self.spec.num_actions, **self.flags)
        B, T, N, _ = x.shape
        x = jnp.swapaxes(x, 0, 1).reshape(T, B * N, -1)  # [T, B*N, Din]
        h0 = jnp.zeros((B * N, self.cfg.agent_hidden_dim))
        reset = jnp.repeat(jnp.swapaxes(batch.starts, 0, 1), N, axis=1)  # [T, B*N], agents fastest
        _, q, hs = unroll(self.agent, agent_params, x, h0, reset)
        return jnp.swapaxes(q.reshape(T, B, N, -1), 0, 1), jnp.swapaxes(hs.reshape(T, B, N, -1), 0, 1)

    def mix(self, mixer_params: Any, q: jax.Array, actions: jax.Array, state: jax.Array, avail: jax.Array) -> jax.Array:
        """Q_tot of `actions` from full utilities q [..., N, A] (the max is taken under sg, §4.2)."""
        q_max = jax.lax.stop_gradient(masked_max(q, avail))
        return self.mixer.apply(mixer_params, self._mixer_input(take(q, actions), state, q_max, actions))

    def central_value(self, params: Params, batch: Episodes, actions: jax.Array, prefix: str = "") -> jax.Array:
        """Q-hat-star(s_t, tau_t, u_t) for every slot. -> [B, T]."""
        q_c = self.utilities(params[prefix + "central_agent"], batch)
        return self.central.apply(params[prefix + "central_mixer"], self._mixer_input(take(q_c, actions), batch.state))

    # ---- learning --------------------------------------------------------------------------
    def td_context(
        self,
        params: Params,
        target_params: Params,
        batch: Episodes,
        hp: HParams,
        reward: jax.Array | None = None,
        q: jax.Array | None = None,
    ) -> TDContext:
        """Everything the losses and weightings read. Online utilities keep their gradient.
        `reward` [B, T-1] replaces the stored reward (intrinsic bonus) before the target rule sees it; `q`
        passes already computed online utilities."""
        q = self.utilities(params["agent"], batch) if q is None else q  # [B, T, N, A]
        greedy = masked_argmax(jax.lax.stop_gradient(q), batch.avail)  # online greedy joint action per slot
        q_tot = self.mix(params["mixer"], q, batch.actions, batch.state, batch.avail)[:, :-1]  # [B, T-1]
        if self.central is not None:  # §5.3 / §6.4: target Q-hat-star at the online greedy action
            q_bar = self.central_value(target_params, batch, greedy)
        else:  # §2–4: target mixer on target utilities at the online greedy (or stored) action
            q_target = self.utilities(target_params["agent"], batch)
            boot = self.target.bootstrap_actions(greedy, q_target, batch)
            q_bar = self.mix(target_params["mixer"], q_target, boot, batch.state, batch.avail)
        q_bar = jax.lax.stop_gradient(q_bar)  # [B, T]
        reward = batch.reward[:, :-1] if reward is None else reward
        reward = self.target.reward(self, params, batch, hp, jax.lax.stop_gradient(q), reward)  # soft targets
        y = td_lambda_targets(reward, batch.terminal[:, :-1], batch.mask, q_bar, hp.gamma, hp.td_lambda)
        chosen = take(jax.lax.stop_gradient(q), batch.actions)
        return TDContext(
            q=q,
            q_tot=q_tot,
            y=jax.lax.stop_gradient(y),
            q_bar=q_bar,
            mask=batch.mask,
            greedy=greedy,
            is_greedy_joint=jnp.all(batch.actions == greedy, axis=-1)[:, :-1],
            advantages=(chosen - masked_max(jax.lax.stop_gradient(q), batch.avail))[:, :-1],
        )

    def main_loss(
        self, params: Params, target_params: Params, batch: Episodes, hp: HParams, key: jax.Array, carry: Carry
    ) -> tuple[jax.Array, tuple[dict, Carry]]:
        del key
        reward = None if self.bonus is None else self.bonus.reward(batch, carry)  # e.g. §8.3: r_ext + beta r_int
        ctx = self.td_context(params, target_params, batch, hp, reward=reward)
        mask = ctx.mask
        if carry.weights is not None:  # weights handed over by an earlier stage take precedence
            w = jax.lax.stop_gradient(carry.weights)
        else:
            w = jax.lax.stop_gradient(self.weighting.weights(self, params, ctx, batch, carry.t_env))
        td = ctx.q_tot - ctx.y
        loss = self.cfg.loss_scale * masked_mean(w * td**2, mask)
        metrics = {
            "td_abs": masked_mean(jnp.abs(td), mask),
            "q_taken": masked_mean(ctx.q_tot, mask),
            "target": masked_mean(ctx.y, mask),
            "weight": masked_mean(w, mask),
        }
        if self.central is not None:  # §5.5 / §6.5: Q-hat-star regresses to the same target
            q_star = self.central_value(params, batch, batch.actions)[:, :-1]
            central = masked_mean((q_star - ctx.y) ** 2, mask)
            loss = loss + self.variant.central_loss_scale * central
            metrics["central_loss"] = central
        return loss, (metrics, carry)

    # ---- acting ------------------------------------------------------------------------------
    def initial_actor_state(self, num_envs: int) -> ActorState:
        N = self.spec.num_agents
        return ActorState(
            hidden=jnp.zeros((num_envs, N, self.cfg.agent_hidden_dim)),
            last_action=jnp.full((num_envs, N), -1, jnp.int32),
            policy_state=(),
        )

    def step_utilities(self, agent_params: Any, actor_state: ActorState, ts: Timestep) -> tuple[jax.Array, jax.Array]:
        """One recurrent step for E envs. -> (hidden [E, N, H], q [E, N, A])."""
        x = agent_inputs(ts.obs, actor_state.last_action, self.spec.num_actions, **self.flags)
        return self.agent.apply(agent_params, actor_state.hidden, x)

    def schedule(self, state: LearnerState) -> dict[str, jax.Array]:
        """§1.7: epsilon annealed linearly over env steps; t_env is frozen for a whole rollout (§13 item 7)."""
        hp = state.hp
        return {
            "epsilon": linear_epsilon(state.t_env.astype(jnp.float32), hp.eps_start, hp.eps_finish, hp.eps_anneal_steps)
        }

    def act(
        self, params: Params, actor_state: ActorState, ts: Timestep, key: jax.Array, schedule: dict, greedy: bool
    ) -> tuple[jax.Array, ActorState]:
        """Epsilon-greedy on the factorised utilities (Q-hat-star and Q_r never act, §5.6, §6.7)."""
        hidden, q = self.step_utilities(params["agent"], actor_state, ts)
        actions = masked_argmax(q, ts.avail) if greedy else epsilon_greedy(key, q, ts.avail, schedule["epsilon"])
        return actions, actor_state.replace(hidden=hidden, last_action=actions)

    # ---- inspection --------------------------------------------------------------------------
    def first_step_utilities(self, agent_params: Any, ts: Timestep) -> jax.Array:
        """Utilities [N, A] of one agent network at an episode's first step (ts unbatched, from reset); the
        single-network actor state even where a subclass keeps more (S2Q's heads)."""
        start = Factorised.initial_actor_state(self, 1)
        return self.step_utilities(agent_params, start, jax.tree.map(lambda x: x[None], ts))[1][0]

    def joint_q_star(self, params: Params, ts: Timestep, joint: jax.Array, state: jax.Array) -> jax.Array:
        """Q-hat-star [J] of joint actions [J, N] at an episode's first step (state [J, G])."""
        q_c = jnp.broadcast_to(
            self.first_step_utilities(params["central_agent"], ts), joint.shape + (self.spec.num_actions,)
        )
        assert self.central is not None, "only learners with a central Q-hat-star"
        return cast(jax.Array, self.central.apply(params["central_mixer"], self._mixer_input(take(q_c, joint), state)))

    def joint_values(self, params: Params, ts: Timestep, joint: jax.Array) -> JointValues:
        """`Algorithm.joint_values`: Q_tot of each joint action [J, N] at an episode's first step, the utilities
        and greedy actions, Q-hat-star where there is a central critic, and the weighting's own values."""
        q = self.first_step_utilities(params["agent"], ts)  # [N, A]
        J = joint.shape[0]
        q_j = jnp.broadcast_to(q, (J,) + q.shape)
        state = jnp.broadcast_to(ts.state, (J, ts.state.shape[-1]))
        avail = jnp.broadcast_to(ts.avail, (J,) + q.shape)
        per_joint: dict[str, Any] = {"q_tot": self.mix(params["mixer"], q_j, joint, state, avail)}
        if self.central is not None:
            per_joint["q_star"] = self.joint_q_star(params, ts, joint, state)
        own = self.weighting.inspect(self, params, state, joint, take(q_j, joint) - masked_max(q_j, avail))
        return JointValues(
            per_joint={**per_joint, **own.per_joint},
            shared={"utilities": q, "greedy": masked_argmax(q, ts.avail), **own.shared},
        )

    def build(self, name: str) -> Algorithm:
        clip = adam_clipped(self.cfg.grad_clip, self.cfg.optimizer)
        main_owns = ("agent", "mixer") + (("central_agent", "central_mixer") if self.central is not None else ())
        main = Stage(name="main", owns=main_owns, loss=self.main_loss, optimizer=clip)
        bonus_stages = () if self.bonus is None else self.bonus.stages(self, clip)
        return self.algorithm(name, bonus_stages + self.weighting.stages(self, clip) + (main,))

    def init_stats(self) -> Any:
        return () if self.bonus is None else self.bonus.init_stats()

    def algorithm(self, name: str, stages: tuple[Stage, ...]) -> Algorithm:
        return Algorithm(
            name=name,
            spec=self.spec,
            init_params=self.init_params,
            target_groups=self.target_groups(),
            stages=stages,
            initial_actor_state=self.initial_actor_state,
            act_fn=self.act,
            init_policy_state=lambda key, num_envs: (),
            target_update_episodes=self.cfg.target_update_episodes,
            hp=HParams.from_config(self.cfg),
            schedule=self.schedule,
            init_stats=self.init_stats,
            joint_values=self.joint_values,
            extras={"step_utilities": self.step_utilities},
        )


def make_factorised(
    cfg: AlgoConfig,
    spec: EnvSpec,
    inputs: AgentInputs,
    variant: Variant = Variant(),
    cls: Any = Factorised,
    weighting: Weighting = Uniform(),
    bonus: BonusReward | None = None,
    target: TargetRule | None = None,
) -> Factorised:
    """The learner with the configured mixer; `cls` builds a subclass (e.g. ME-IGM's)."""
    mixer = make_mixer(
        cfg.mixer,
        embed_dim=cfg.mixing_embed_dim,
        hypernet_dim=cfg.hypernet_embed_dim,
        adv_layers=read(QplexMixer, cfg).adv_hypernet_layers,
    )
    return cls(cfg, spec, inputs, mixer, variant, weighting=weighting, bonus=bonus, target=target)
