"""The shared factorised TD learner: recurrent agent + mixer + TD(lambda) (ALGORITHMS.md §1–3).

VDN and QMIX (and later variants) differ only in the mixer and a few flags; everything here is
written once. Loss (§1.6): L = c * sum_{b,t} m w (Q_tot - sg(y))^2 / sum_{b,t} m, with y the §1.5
TD(lambda) target of a greedy (double-Q) or SARSA bootstrap (§1.5 table).
"""

from __future__ import annotations

import itertools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxfactor.algos.base import ActorState, Algorithm, HParams, Params, Stage, adam_clipped
from jaxfactor.config import AlgoConfig, EnvConfig
from jaxfactor.networks.agent import RecurrentQAgent, agent_inputs, input_dim, unroll
from jaxfactor.networks.mixers import MixerInput, make_mixer
from jaxfactor.rl.policies import epsilon_greedy, masked_argmax
from jaxfactor.rl.targets import td_lambda_targets
from jaxfactor.structs import EnvSpec, Episodes, Timestep


def previous_actions(actions: jax.Array) -> jax.Array:
    """u_{t-1} per slot, -1 (all-zero one-hot) at slot 0. actions [B, T, N] -> [B, T, N]."""
    return jnp.concatenate([jnp.full_like(actions[:, :1], -1), actions[:, :-1]], axis=1)


def take(q: jax.Array, actions: jax.Array) -> jax.Array:
    """Utilities of the given actions. q [..., A], actions [...] -> [...]."""
    return jnp.take_along_axis(q, actions[..., None], axis=-1)[..., 0]


class Factorised:
    """Components of a factorised value learner for one env spec; builds the `Algorithm`."""

    def __init__(self, cfg: AlgoConfig, env_cfg: EnvConfig, spec: EnvSpec, mixer: nn.Module):
        self.cfg, self.spec = cfg, spec
        self.flags = dict(obs_last_action=env_cfg.obs_last_action, obs_agent_id=env_cfg.obs_agent_id)
        self.agent = RecurrentQAgent(hidden_dim=cfg.agent_hidden_dim, num_actions=spec.num_actions)
        self.mixer = mixer
        self.input_dim = input_dim(spec.obs_dim, spec.num_agents, spec.num_actions, **self.flags)

    # ---- networks ------------------------------------------------------------------------------
    def init_params(self, key: jax.Array) -> Params:
        k_agent, k_mixer = jax.random.split(key)
        H, N = self.cfg.agent_hidden_dim, self.spec.num_agents
        agent = self.agent.init(k_agent, jnp.zeros((1, H)), jnp.zeros((1, self.input_dim)))
        mixer = self.mixer.init(k_mixer, MixerInput(qs=jnp.zeros((1, N)), state=jnp.zeros((1, self.spec.state_dim))))
        return {"agent": agent, "mixer": mixer}

    def utilities(self, agent_params: Any, batch: Episodes) -> jax.Array:
        """Unroll the agent over whole stored episodes from a zero state. -> q [B, T, N, A]."""
        x = agent_inputs(batch.obs, previous_actions(batch.actions), self.spec.num_actions, **self.flags)
        B, T, N, _ = x.shape
        x = jnp.swapaxes(x, 0, 1).reshape(T, B * N, -1)  # [T, B*N, Din]
        h0 = jnp.zeros((B * N, self.cfg.agent_hidden_dim))
        _, q, _ = unroll(self.agent, agent_params, x, h0, jnp.zeros((T, B * N), bool))
        return jnp.swapaxes(q.reshape(T, B, N, -1), 0, 1)

    def mix(self, mixer_params: Any, qs: jax.Array, state: jax.Array) -> jax.Array:
        return self.mixer.apply(mixer_params, MixerInput(qs=qs, state=state))

    # ---- learning --------------------------------------------------------------------------
    def td_targets(self, q_online: jax.Array, target_params: Params, batch: Episodes, hp: HParams) -> jax.Array:
        """y [B, T-1] (§1.5) with the bootstrap of §3: target mixer on target utilities at the online
        greedy joint action (double-Q), or at the stored action (SARSA, §8.2)."""
        q_target = self.utilities(target_params["agent"], batch)
        if self.cfg.bootstrap == "sarsa":
            boot_actions = batch.actions
        else:
            selector = jax.lax.stop_gradient(q_online) if self.cfg.double_q else q_target
            boot_actions = masked_argmax(selector, batch.avail)
        q_bar = self.mix(target_params["mixer"], take(q_target, boot_actions), batch.state)  # [B, T]
        y = td_lambda_targets(batch.reward[:, :-1], batch.terminal[:, :-1], batch.mask, q_bar, hp.gamma,
                              hp.td_lambda)
        return jax.lax.stop_gradient(y)

    def td_loss(self, params: Params, target_params: Params, batch: Episodes, hp: HParams, key: jax.Array,
                carry: dict) -> tuple[jax.Array, tuple[dict, dict]]:
        del key
        q = self.utilities(params["agent"], batch)  # [B, T, N, A]
        q_tot = self.mix(params["mixer"], take(q, batch.actions)[:, :-1], batch.state[:, :-1])  # [B, T-1]
        y = self.td_targets(q, target_params, batch, hp)
        mask = batch.mask
        weights = carry.get("weights", jnp.ones_like(mask))  # stop-gradient weights from earlier stages
        td = q_tot - y
        n_valid = jnp.maximum(mask.sum(), 1.0)
        loss = self.cfg.loss_scale * jnp.sum(mask * weights * td**2) / n_valid  # §1.6: normalise by sum(m)
        metrics = {"td_abs": jnp.sum(mask * jnp.abs(td)) / n_valid,
                   "q_taken": jnp.sum(mask * q_tot) / n_valid,
                   "target": jnp.sum(mask * y) / n_valid}
        return loss, (metrics, carry)

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

    def act(self, params: Params, actor_state: ActorState, ts: Timestep, key: jax.Array, epsilon: jax.Array,
            greedy: bool) -> tuple[jax.Array, ActorState]:
        hidden, q = self.step_utilities(params["agent"], actor_state, ts)
        actions = masked_argmax(q, ts.avail) if greedy else epsilon_greedy(key, q, ts.avail, epsilon)
        return actions, actor_state.replace(hidden=hidden, last_action=actions)

    # ---- inspection --------------------------------------------------------------------------
    def q_table(self, params: Params, ts: Timestep) -> dict[str, jax.Array]:
        """Utilities [N, A] and the joint table Q_tot [A]*N at the first step of an episode
        (one-step matrix games). ts: an unbatched Timestep from reset."""
        N, A = self.spec.num_agents, self.spec.num_actions
        fresh = self.initial_actor_state(1)
        ts1 = jax.tree.map(lambda x: x[None], ts)
        _, q = self.step_utilities(params["agent"], fresh, ts1)
        q = q[0]  # [N, A]
        joint = jnp.array(list(itertools.product(range(A), repeat=N)), jnp.int32)  # [A^N, N]
        chosen = q[jnp.arange(N)[None, :], joint]  # [A^N, N]
        state = jnp.broadcast_to(ts.state, (joint.shape[0], ts.state.shape[-1]))
        q_tot = self.mix(params["mixer"], chosen, state).reshape((A,) * N)
        return {"utilities": q, "q_tot": q_tot, "greedy": masked_argmax(q, ts.avail)}

    def build(self, name: str, stages: tuple[Stage, ...] | None = None) -> Algorithm:
        main = Stage(name="main", owns=("agent", "mixer"), loss=self.td_loss,
                     optimizer=adam_clipped(self.cfg.grad_clip))
        return Algorithm(
            name=name, spec=self.spec, init_params=self.init_params, target_groups=("agent", "mixer"),
            stages=stages or (main,), initial_actor_state=self.initial_actor_state, act_fn=self.act,
            init_policy_state=lambda key, num_envs: (), target_update_episodes=self.cfg.target_update_episodes,
            hp=HParams.from_config(self.cfg), extras={"q_table": self.q_table, "utilities": self.utilities,
                                                      "step_utilities": self.step_utilities})


def make_factorised(cfg: AlgoConfig, env_cfg: EnvConfig, spec: EnvSpec) -> Factorised:
    return Factorised(cfg, env_cfg, spec, make_mixer(cfg.mixer, embed_dim=cfg.mixing_embed_dim,
                                                     hypernet_dim=cfg.hypernet_embed_dim))
