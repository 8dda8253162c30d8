"""The shared factorised TD learner: recurrent agent + mixer + TD(lambda) (ALGORITHMS.md §1–6).

Every value-factorisation algorithm composes this one learner; what differs is data in `Variant`:
the mixer (VDN, QMIX, QPLEX), an optional unrestricted central Q-hat-star that bootstraps the target
(WQMIX §5, POW §6), the weighting of the TD loss (uniform, CW, OW, POW) and an optional recognition
stage (POW). Loss (§1.6): L = c * sum m w (Q_tot - sg(y))^2 / sum m  [+ c* sum m (Q* - sg(y))^2 / sum m],
with y the §1.5 TD(lambda) target of a greedy (double-Q) or SARSA bootstrap.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfactor.algos.base import ActorState, Algorithm, HParams, LearnerState, Params, Stage, adam_clipped
from jaxfactor.config import AlgoConfig, EnvConfig
from jaxfactor.errors import ConfigError
from jaxfactor.networks.agent import RecurrentQAgent, agent_inputs, input_dim, unroll
from jaxfactor.networks.entropy import RNDNetwork
from jaxfactor.networks.mixers import CentralMixer, MixerInput, make_mixer
from jaxfactor.networks.recognition import RecognitionQr
from jaxfactor.rl.policies import epsilon_greedy, linear_epsilon, masked_argmax, masked_max
from jaxfactor.rl.targets import td_lambda_targets
from jaxfactor.rl.weighting import central_weights, optimistic_weights, potentially_optimal_weights
from jaxfactor.structs import EnvSpec, Episodes, Timestep

WEIGHTINGS = ("uniform", "cw", "ow", "pow")


@dataclasses.dataclass(frozen=True)
class Variant:
    """What distinguishes one factorised algorithm from another (all static)."""

    central_embed_dim: int | None = None
    """Width E_c of the central Q-hat-star (B3); None = no central value, bootstrap through the target mixer."""
    weighting: str = "uniform"
    alpha: float = 1.0
    """Weight outside the favoured set (CW/OW/POW)."""
    central_loss_scale: float = 0.5
    """c of the Q-hat-star loss (PyMARL2 and POW: 1/2)."""
    pow_tolerance: float = 0.1
    """eps_r of the potentially-optimal set (§6.3)."""
    pow_steps: int = 10
    pow_first_steps: int = 20
    pow_warmup_steps: int = 0
    """Env steps during which the POW weights are 1 (§6.6 warm-up)."""
    rnd_coef: float | None = None
    """beta of the RND intrinsic reward r = r_ext + beta r_int (§8.3); None = no RND."""
    rnd_lr: float = 5e-4


def previous_actions(actions: jax.Array, starts: jax.Array) -> jax.Array:
    """u_{t-1} per slot, -1 (all-zero one-hot) at slot 0 and where an episode starts (`Episodes.starts` [B, T]).
    actions [B, T, N] -> [B, T, N]."""
    previous = jnp.concatenate([jnp.full_like(actions[:, :1], -1), actions[:, :-1]], axis=1)
    return jnp.where(starts[..., None], -1, previous)


def take(q: jax.Array, actions: jax.Array) -> jax.Array:
    """Utilities of the given actions. q [..., A], actions [...] -> [...]."""
    return jnp.take_along_axis(q, actions[..., None], axis=-1)[..., 0]


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over valid transitions: the normaliser is sum(m), never the sum of weights (§1.6)."""
    return jnp.sum(mask * x) / jnp.maximum(mask.sum(), 1.0)


class Factorised:
    """Components of a factorised value learner for one env spec; builds the `Algorithm`."""

    def __init__(self, cfg: AlgoConfig, env_cfg: EnvConfig, spec: EnvSpec, mixer: nn.Module,
                 variant: Variant = Variant()):
        if variant.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {variant.weighting}")
        if variant.central_embed_dim and (cfg.bootstrap != "greedy" or not cfg.double_q):
            # §1.4/§5.3: the central target is always Q-hat-star^- at the ONLINE greedy joint action.
            raise ConfigError(f"algo '{cfg.name}' bootstraps through its central Q-hat-star at the online greedy "
                              f"action; got algo.bootstrap={cfg.bootstrap}, algo.double_q={cfg.double_q}; "
                              "allowed: bootstrap=greedy with double_q=true")
        self.cfg, self.spec, self.variant = cfg, spec, variant
        self.flags = dict(obs_last_action=env_cfg.obs_last_action, obs_agent_id=env_cfg.obs_agent_id)
        self.agent = RecurrentQAgent(hidden_dim=cfg.agent_hidden_dim, num_actions=spec.num_actions)
        self.mixer = mixer
        self.central = CentralMixer(variant.central_embed_dim) if variant.central_embed_dim else None
        self.recognition = RecognitionQr() if variant.weighting == "pow" else None
        self.rnd = RNDNetwork() if variant.rnd_coef is not None else None
        self.input_dim = input_dim(spec.obs_dim, spec.num_agents, spec.num_actions, **self.flags)

    # ---- networks ------------------------------------------------------------------------------
    def _mixer_input(self, qs, state, q_max=None, actions=None) -> MixerInput:
        onehot = None if actions is None else jax.nn.one_hot(actions, self.spec.num_actions)
        return MixerInput(qs=qs, state=state, q_max=q_max, actions_onehot=onehot)

    def init_params(self, key: jax.Array) -> Params:
        keys = jax.random.split(key, 7)
        H, N, A, G = self.cfg.agent_hidden_dim, self.spec.num_agents, self.spec.num_actions, self.spec.state_dim
        h, x = jnp.zeros((1, H)), jnp.zeros((1, self.input_dim))
        example = self._mixer_input(jnp.zeros((1, N)), jnp.zeros((1, G)), jnp.zeros((1, N)),
                                    jnp.zeros((1, N), jnp.int32))
        params = {"agent": self.agent.init(keys[0], h, x), "mixer": self.mixer.init(keys[1], example)}
        if self.central is not None:
            params["central_agent"] = self.agent.init(keys[2], h, x)  # own parameters, same architecture
            params["central_mixer"] = self.central.init(keys[3], example)
        if self.recognition is not None:
            params["recognition"] = self.recognition.init(keys[4], jnp.zeros((1, G)), jnp.zeros((1, N, A)),
                                                          jnp.zeros((1, N)))
        if self.rnd is not None:  # the target is never trained: no stage owns it
            params["rnd_target"] = self.rnd.init(keys[5], jnp.zeros((1, G)))
            params["rnd_predictor"] = self.rnd.init(keys[6], jnp.zeros((1, G)))
        return params

    def target_groups(self) -> tuple[str, ...]:
        return ("agent", "mixer") + (("central_agent", "central_mixer") if self.central is not None else ())

    def utilities(self, agent_params: Any, batch: Episodes) -> jax.Array:
        """Unroll an agent network over stored rows from a zero state (restarting where an episode starts).
        -> q [B, T, N, A]."""
        return self.utilities_and_hidden(agent_params, batch)[0]

    def utilities_and_hidden(self, agent_params: Any, batch: Episodes) -> tuple[jax.Array, jax.Array]:
        """-> (q [B, T, N, A], GRU states after consuming o_t [B, T, N, H])."""
        x = agent_inputs(batch.obs, previous_actions(batch.actions, batch.starts), self.spec.num_actions,
                         **self.flags)
        B, T, N, _ = x.shape
        x = jnp.swapaxes(x, 0, 1).reshape(T, B * N, -1)  # [T, B*N, Din]
        h0 = jnp.zeros((B * N, self.cfg.agent_hidden_dim))
        reset = jnp.repeat(jnp.swapaxes(batch.starts, 0, 1), N, axis=1)  # [T, B*N], agents fastest
        _, q, hs = unroll(self.agent, agent_params, x, h0, reset)
        return jnp.swapaxes(q.reshape(T, B, N, -1), 0, 1), jnp.swapaxes(hs.reshape(T, B, N, -1), 0, 1)

    def mix(self, mixer_params: Any, q: jax.Array, actions: jax.Array, state: jax.Array, avail: jax.Array
            ) -> jax.Array:
        """Q_tot of `actions` from full utilities q [..., N, A] (the max is taken under sg, §4.2)."""
        q_max = jax.lax.stop_gradient(masked_max(q, avail))
        return self.mixer.apply(mixer_params, self._mixer_input(take(q, actions), state, q_max, actions))

    def central_value(self, params: Params, batch: Episodes, actions: jax.Array, prefix: str = "") -> jax.Array:
        """Q-hat-star(s_t, tau_t, u_t) for every slot. -> [B, T]."""
        q_c = self.utilities(params[prefix + "central_agent"], batch)
        return self.central.apply(params[prefix + "central_mixer"],
                                  self._mixer_input(take(q_c, actions), batch.state))

    # ---- learning --------------------------------------------------------------------------
    def td_context(self, params: Params, target_params: Params, batch: Episodes, hp: HParams,
                   reward: jax.Array | None = None, q: jax.Array | None = None) -> dict:
        """Everything the losses and weightings read. Online utilities keep their gradient.
        `reward` [B, T-1] replaces the stored reward (intrinsic bonus, soft-target shift); `q` passes
        already computed online utilities."""
        q = self.utilities(params["agent"], batch) if q is None else q  # [B, T, N, A]
        greedy = masked_argmax(jax.lax.stop_gradient(q), batch.avail)  # online greedy joint action per slot
        q_tot = self.mix(params["mixer"], q, batch.actions, batch.state, batch.avail)[:, :-1]  # [B, T-1]
        if self.central is not None:  # §5.3 / §6.4: target Q-hat-star at the online greedy action
            q_bar = self.central_value(target_params, batch, greedy)
        else:  # §2–4: target mixer on target utilities at the online greedy (or stored) action
            q_target = self.utilities(target_params["agent"], batch)
            if self.cfg.bootstrap == "sarsa":
                boot = batch.actions
            else:
                boot = greedy if self.cfg.double_q else masked_argmax(q_target, batch.avail)
            q_bar = self.mix(target_params["mixer"], q_target, boot, batch.state, batch.avail)
        q_bar = jax.lax.stop_gradient(q_bar)  # [B, T]
        reward = batch.reward[:, :-1] if reward is None else reward
        y = td_lambda_targets(reward, batch.terminal[:, :-1], batch.mask, q_bar, hp.gamma, hp.td_lambda)
        chosen = take(jax.lax.stop_gradient(q), batch.actions)
        return {"q": q, "q_tot": q_tot, "y": jax.lax.stop_gradient(y), "q_bar": q_bar, "mask": batch.mask,
                "greedy": greedy,
                "is_greedy_joint": jnp.all(batch.actions == greedy, axis=-1)[:, :-1],
                "advantages": (chosen - masked_max(jax.lax.stop_gradient(q), batch.avail))[:, :-1]}

    def recognition_values(self, recognition_params: Any, batch: Episodes, advantages: jax.Array):
        onehot = jax.nn.one_hot(batch.actions[:, :-1], self.spec.num_actions)
        return self.recognition.apply(recognition_params, batch.state[:, :-1], onehot, advantages)

    def weights(self, params: Params, ctx: dict, batch: Episodes, hp: HParams, t_env: jax.Array) -> jax.Array:
        v = self.variant
        if v.weighting == "cw":
            w = central_weights(ctx["is_greedy_joint"], ctx["y"], ctx["q_bar"][:, :-1], v.alpha)
        elif v.weighting == "ow":
            w = optimistic_weights(ctx["q_tot"], ctx["y"], v.alpha)
        elif v.weighting == "pow":  # with the recogniser as just updated by its own stage (§6.6 step 4)
            q_r, v_r = self.recognition_values(params["recognition"], batch, ctx["advantages"])
            w = potentially_optimal_weights(q_r, v_r, v.pow_tolerance, v.alpha)
            w = jnp.where(t_env <= v.pow_warmup_steps, 1.0, w)
        else:
            w = jnp.ones_like(ctx["mask"])
        return jax.lax.stop_gradient(w)

    def main_loss(self, params: Params, target_params: Params, batch: Episodes, hp: HParams, key: jax.Array,
                  carry: dict) -> tuple[jax.Array, tuple[dict, dict]]:
        del key
        reward = None
        if "intrinsic_reward" in carry:  # §8.3: y is built on r_ext + beta r_int
            reward = batch.reward[:, :-1] + self.variant.rnd_coef * carry["intrinsic_reward"]
        ctx = self.td_context(params, target_params, batch, hp, reward=reward)
        mask = ctx["mask"]
        if "weights" in carry:  # weights handed over by an earlier stage take precedence
            w = jax.lax.stop_gradient(carry["weights"])
        else:
            w = self.weights(params, ctx, batch, hp, carry.get("t_env", jnp.array(0)))
        td = ctx["q_tot"] - ctx["y"]
        loss = self.cfg.loss_scale * masked_mean(w * td**2, mask)
        metrics = {"td_abs": masked_mean(jnp.abs(td), mask), "q_taken": masked_mean(ctx["q_tot"], mask),
                   "target": masked_mean(ctx["y"], mask), "weight": masked_mean(w, mask)}
        if self.central is not None:  # §5.5 / §6.5: Q-hat-star regresses to the same target
            q_star = self.central_value(params, batch, batch.actions)[:, :-1]
            central = masked_mean((q_star - ctx["y"]) ** 2, mask)
            loss = loss + self.variant.central_loss_scale * central
            metrics["central_loss"] = central
        return loss, (metrics, carry)

    # POW's recognition stage (§6.5 L_r, §6.6 step 3): same batch, stopped inputs, its own Adam.
    def recognition_prepare(self, params, target_params, batch, hp, carry) -> dict:
        ctx = self.td_context(params, target_params, batch, hp)
        return {**carry, "y": ctx["y"], "advantages": jax.lax.stop_gradient(ctx["advantages"])}

    def recognition_loss(self, params, target_params, batch, hp, key, carry):
        q_r, _ = self.recognition_values(params["recognition"], batch, carry["advantages"])
        loss = 0.5 * masked_mean((q_r - carry["y"]) ** 2, batch.mask)
        return loss, ({}, carry)

    # RND (§8.3): r_int_t = |f^(s_{t+1}) - f-(s_{t+1})|^2 / 64 with the current predictor, divided by a
    # running standard deviation; the predictor then regresses onto the frozen target (its own Adam).
    def rnd_error(self, params: Params, batch: Episodes) -> jax.Array:
        next_state = batch.state[:, 1:]  # s_{t+1} for t = 0..T-2
        target = jax.lax.stop_gradient(self.rnd.apply(params["rnd_target"], next_state))
        return jnp.mean((self.rnd.apply(params["rnd_predictor"], next_state) - target) ** 2, axis=-1)

    def rnd_prepare(self, params, target_params, batch, hp, carry) -> dict:
        error = jax.lax.stop_gradient(self.rnd_error(params, batch))
        stats = update_moments(carry["stats"], error, batch.mask)
        std = jnp.sqrt(stats["m2"] / stats["count"] + 1e-8)
        return {**carry, "stats": stats, "intrinsic_reward": batch.mask * error / std}

    def rnd_loss(self, params, target_params, batch, hp, key, carry):
        loss = masked_mean(self.rnd_error(params, batch), batch.mask)
        return loss, ({"intrinsic_reward": masked_mean(carry["intrinsic_reward"], batch.mask)}, carry)

    # ---- acting ------------------------------------------------------------------------------
    def initial_actor_state(self, num_envs: int) -> ActorState:
        N = self.spec.num_agents
        return ActorState(hidden=jnp.zeros((num_envs, N, self.cfg.agent_hidden_dim)),
                          last_action=jnp.full((num_envs, N), -1, jnp.int32), policy_state=())

    def step_utilities(self, agent_params: Any, actor_state: ActorState, ts: Timestep
                       ) -> tuple[jax.Array, jax.Array]:
        """One recurrent step for E envs. -> (hidden [E, N, H], q [E, N, A])."""
        x = agent_inputs(ts.obs, actor_state.last_action, self.spec.num_actions, **self.flags)
        return self.agent.apply(agent_params, actor_state.hidden, x)

    def schedule(self, state: LearnerState) -> dict[str, jax.Array]:
        """§1.7: epsilon annealed linearly over env steps; t_env is frozen for a whole rollout (§13 item 7)."""
        hp = state.hp
        return {"epsilon": linear_epsilon(state.t_env.astype(jnp.float32), hp.eps_start, hp.eps_finish,
                                          hp.eps_anneal_steps)}

    def act(self, params: Params, actor_state: ActorState, ts: Timestep, key: jax.Array, schedule: dict,
            greedy: bool) -> tuple[jax.Array, ActorState]:
        """Epsilon-greedy on the factorised utilities (Q-hat-star and Q_r never act, §5.6, §6.7)."""
        hidden, q = self.step_utilities(params["agent"], actor_state, ts)
        actions = masked_argmax(q, ts.avail) if greedy else epsilon_greedy(key, q, ts.avail, schedule["epsilon"])
        return actions, actor_state.replace(hidden=hidden, last_action=actions)

    # ---- inspection --------------------------------------------------------------------------
    def q_table(self, params: Params, ts: Timestep) -> dict[str, jax.Array]:
        """At the first step of an episode (one-step matrix games; ts unbatched from reset): utilities [N, A],
        Q_tot [A]*N over every joint action, and, where present, Q-hat-star and Q_r tables."""
        N, A = self.spec.num_agents, self.spec.num_actions
        _, q = self.step_utilities(params["agent"], self.initial_actor_state(1), jax.tree.map(lambda x: x[None], ts))
        q = q[0]  # [N, A]
        joint = jnp.array(list(itertools.product(range(A), repeat=N)), jnp.int32)  # [A^N, N]
        J = joint.shape[0]
        q_j = jnp.broadcast_to(q, (J, N, A))
        state = jnp.broadcast_to(ts.state, (J, ts.state.shape[-1]))
        avail = jnp.broadcast_to(ts.avail, (J, N, A))
        out = {"utilities": q, "greedy": masked_argmax(q, ts.avail),
               "q_tot": self.mix(params["mixer"], q_j, joint, state, avail).reshape((A,) * N)}
        if self.central is not None:
            _, q_c = self.step_utilities(params["central_agent"], self.initial_actor_state(1),
                                         jax.tree.map(lambda x: x[None], ts))
            q_c = jnp.broadcast_to(q_c[0], (J, N, A))
            out["q_star"] = self.central.apply(params["central_mixer"],
                                               self._mixer_input(take(q_c, joint), state)).reshape((A,) * N)
        if self.recognition is not None:
            adv = take(q_j, joint) - masked_max(q_j, avail)
            q_r, v_r = self.recognition.apply(params["recognition"], state, jax.nn.one_hot(joint, A), adv)
            out["q_r"] = q_r.reshape((A,) * N)
            out["v_r"] = v_r[0]
        return out

    def build(self, name: str) -> Algorithm:
        clip = adam_clipped(self.cfg.grad_clip, self.cfg.optimizer)
        main_owns = ("agent", "mixer") + (("central_agent", "central_mixer") if self.central is not None else ())
        stages = (Stage(name="main", owns=main_owns, loss=self.main_loss, optimizer=clip),)
        if self.recognition is not None:
            v = self.variant
            recognition = Stage(name="recognition", owns=("recognition",), loss=self.recognition_loss,
                                optimizer=clip, steps=v.pow_steps, first_steps=v.pow_first_steps,
                                prepare=self.recognition_prepare)
            stages = (recognition,) + stages
        if self.rnd is not None:
            rnd_lr = self.variant.rnd_lr
            rnd = Stage(name="rnd", owns=("rnd_predictor",), loss=self.rnd_loss, optimizer=clip,
                        learning_rate=lambda hp: jnp.asarray(rnd_lr, jnp.float32), prepare=self.rnd_prepare)
            stages = (rnd,) + stages
        return self.algorithm(name, stages)

    def init_stats(self) -> Any:
        if self.rnd is None:
            return ()
        return {"count": jnp.array(1e-4), "mean": jnp.array(0.0), "m2": jnp.array(1e-4)}  # var 1 prior

    def algorithm(self, name: str, stages: tuple[Stage, ...]) -> Algorithm:
        return Algorithm(
            name=name, spec=self.spec, init_params=self.init_params, target_groups=self.target_groups(),
            stages=stages, initial_actor_state=self.initial_actor_state, act_fn=self.act,
            init_policy_state=lambda key, num_envs: (), target_update_episodes=self.cfg.target_update_episodes,
            hp=HParams.from_config(self.cfg), schedule=self.schedule, init_stats=self.init_stats,
            extras={"q_table": self.q_table, "utilities": self.utilities, "step_utilities": self.step_utilities})


def update_moments(stats: dict, x: jax.Array, mask: jax.Array) -> dict:
    """Running mean / sum of squared deviations (parallel Welford) over the valid entries of x."""
    n = mask.sum()
    mean = jnp.sum(mask * x) / jnp.maximum(n, 1.0)
    m2 = jnp.sum(mask * (x - mean) ** 2)
    total = stats["count"] + n
    delta = mean - stats["mean"]
    return {"count": total, "mean": stats["mean"] + delta * n / total,
            "m2": stats["m2"] + m2 + delta**2 * stats["count"] * n / total}


def make_factorised(cfg: AlgoConfig, env_cfg: EnvConfig, spec: EnvSpec, variant: Variant = Variant(),
                    adv_layers: int = 2, cls: Any = Factorised) -> Factorised:
    """The learner with the configured mixer; `cls` builds a subclass (e.g. ME-IGM's)."""
    mixer = make_mixer(cfg.mixer, embed_dim=cfg.mixing_embed_dim, hypernet_dim=cfg.hypernet_embed_dim,
                       adv_layers=adv_layers)
    return cls(cfg, env_cfg, spec, mixer, variant)
