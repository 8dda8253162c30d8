"""The algorithm interface: a composition of networks, loss stages and a behaviour policy, with
generic pure `init`, `act` and `update` that every algorithm shares (DESIGN.md §2.3.10).

An algorithm is built for ONE seed on ONE device; seeds, chunking and devices live in `runner/`.
What varies between algorithms is data, not loops:

* `init_params(key) -> {group: params}`: any number of parameter groups (agent, mixer, a central
  critic, a recognition network, RND networks, an OPT hypernetwork, log-alpha, ...);
  `target_groups` names those with a hard-copied target network.
* `stages`: losses applied in order on the same sampled batch, each owning some groups and having
  its own optax optimiser and number of inner steps (POW's recognition module: 20 steps on the
  first call, 10 afterwards, then the main step). A stage may `prepare` stop-gradient inputs once
  (targets, weights) and hands a typed `Carry` to later stages (weights from an earlier stage,
  intrinsic rewards). Stages after the first see the parameters the earlier stages just updated
  (ME-IGM: critic, then OPT, then temperature).
* `act_fn`: maps utilities (one head or K heads) to actions with a per-env `policy_state` that is
  re-drawn at episode starts (S2Q's per-episode sub-value index) and may read the global state
  and any parameter group (ME-IGM's softmax over OPT(Q)/alpha).
* `schedule`: the behaviour policy's inputs derived from the learner state (epsilon at the learner's
  env-step count); `behaviour(learner)` packs them with the parameters for the collectors, so no runner
  reads hyperparameters.
* Targets are built inside losses from shared pure functions (`rl/targets.py`), greedy or SARSA
  bootstraps included, so soft targets and reward shifts are local to an algorithm.

`act`, `observe` and `update` are jittable for one env batch and one sampled batch, so a host loop over
non-JAX simulators calls them exactly as the device loop does (through `runner/learn.py`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from jaxfactor.algos.components import Carry, JointValues
from jaxfactor.structs import EnvSpec, Episodes, Timestep, where_env

Params = dict[str, Any]
Metrics = dict[str, jax.Array]


@struct.dataclass
class HParams:
    """Numeric hyperparameters that do not change shapes. They are pytree leaves of the learner state,
    so a grid over them can ride the seed axis of one compiled program without recompilation."""

    lr: jax.Array
    gamma: jax.Array
    td_lambda: jax.Array
    eps_start: jax.Array
    eps_finish: jax.Array
    eps_anneal_steps: jax.Array

    @classmethod
    def from_config(cls, algo_cfg) -> HParams:
        f = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
        return cls(
            lr=f(algo_cfg.lr),
            gamma=f(algo_cfg.gamma),
            td_lambda=f(algo_cfg.td_lambda),
            eps_start=f(algo_cfg.eps_start),
            eps_finish=f(algo_cfg.eps_finish),
            eps_anneal_steps=f(algo_cfg.eps_anneal_steps),
        )


@struct.dataclass
class LearnerState:
    params: Params
    target_params: Params
    opt_states: dict[str, Any]
    hp: HParams
    num_updates: jax.Array  # gradient updates done (main stage calls)
    episodes_since_target: jax.Array  # episodes collected since the last hard target copy
    t_env: jax.Array  # env steps collected so far (read by schedules such as epsilon and warm-ups)
    episodes: jax.Array  # episodes collected so far
    stats: Any = ()  # algorithm-owned running statistics that are not trained (e.g. RND's reward moments)


@struct.dataclass
class Behaviour:
    """What acting needs from a learner: its parameters, its env-step count (envs may read it at reset) and the
    behaviour policy's schedule values (e.g. {"epsilon": ...}). A collector needs only this and `act`."""

    params: Params
    t_env: jax.Array
    schedule: dict[str, jax.Array]


@struct.dataclass
class ActorState:
    hidden: Any  # recurrent state, leaves [E, N, ...]
    last_action: jax.Array  # [E, N] int32, -1 at episode start
    policy_state: Any  # per-env behaviour-policy state (e.g. a per-episode head index)


LossFn = Callable[[Params, Params, Episodes, HParams, jax.Array, Carry], tuple[jax.Array, tuple[Metrics, Carry]]]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One loss and the optimiser that minimises it over the parameter groups it owns."""

    name: str
    owns: tuple[str, ...]
    loss: LossFn
    """(params, target_params, batch, hp, key, carry) -> (loss, (metrics, carry))."""
    optimizer: Callable[[float], optax.GradientTransformation]
    """learning_rate -> optimiser; wrapped with inject_hyperparams so the rate is a state leaf."""
    learning_rate: Callable[[HParams], jax.Array] = lambda hp: hp.lr
    steps: int = 1
    first_steps: int | None = None
    """Inner steps on the very first update (POW: 20 vs 10), None = steps."""
    prepare: Callable[[Params, Params, Episodes, HParams, Carry], Carry] | None = None
    """Computes stop-gradient inputs once, before the inner steps; returns the new carry."""


def adam_clipped(grad_clip: float, kind: str = "adam") -> Callable[[float], optax.GradientTransformation]:
    """Adam (PyTorch defaults; §1.6) or RAdam (JaxMARL's qmix_rnn.py, optax defaults) after global-norm clipping
    over this optimiser's parameters."""
    rule = {"adam": lambda lr: optax.adam(lr, eps=1e-8), "radam": optax.radam}[kind]

    def make(learning_rate: float) -> optax.GradientTransformation:
        return optax.chain(optax.clip_by_global_norm(grad_clip), rule(learning_rate))

    return make


@dataclasses.dataclass(frozen=True)
class Algorithm:
    name: str
    spec: EnvSpec
    init_params: Callable[[jax.Array], Params]
    target_groups: tuple[str, ...]
    stages: tuple[Stage, ...]
    initial_actor_state: Callable[[int], ActorState]
    act_fn: Callable[..., tuple[jax.Array, ActorState]]
    """(params, actor_state, timestep [E], key, schedule, greedy) -> (actions [E,N], actor_state);
    called after episode-start resets were applied to actor_state; greedy acting never reads `schedule`."""
    init_policy_state: Callable[[jax.Array, int], Any]
    """(key, num_envs) -> fresh per-env policy state, drawn at episode starts."""
    target_update_episodes: int
    hp: HParams
    schedule: Callable[[LearnerState], dict[str, jax.Array]] = lambda state: {}
    """Behaviour-policy inputs derived from the learner state; logged as rollout/<name>."""
    init_stats: Callable[[], Any] = lambda: ()
    """Initial running statistics; stages read and replace them through `Carry.stats`."""
    joint_values: Callable[[Params, Timestep, jax.Array], JointValues] | None = None
    """(params, timestep at an episode's first step (unbatched), joint actions [J, N]) -> what the learner values
    them at: the one inspection hook (matrix-game tables, studies); None where an algorithm has no joint value."""
    extras: dict[str, Callable] = dataclasses.field(default_factory=dict)
    """Optional network pieces for experiments (e.g. `step_utilities`, `log_policy`)."""

    # ---- pure, generic functions -------------------------------------------------------------
    def _optimizer(self, stage: Stage) -> optax.GradientTransformation:
        return optax.inject_hyperparams(stage.optimizer)(learning_rate=0.0)

    def init(self, key: jax.Array, hp: HParams | None = None) -> LearnerState:
        hp = self.hp if hp is None else hp
        params = self.init_params(key)
        opt_states = {}
        for stage in self.stages:
            state = self._optimizer(stage).init({g: params[g] for g in stage.owns})
            state.hyperparams["learning_rate"] = stage.learning_rate(hp)
            opt_states[stage.name] = state
        targets = {g: params[g] for g in self.target_groups}
        return LearnerState(
            params=params,
            target_params=targets,
            opt_states=opt_states,
            hp=hp,
            num_updates=jnp.array(0, jnp.int32),
            episodes_since_target=jnp.array(0, jnp.int32),
            t_env=jnp.array(0, jnp.int32),
            episodes=jnp.array(0, jnp.int32),
            stats=self.init_stats(),
        )

    def behaviour(self, state: LearnerState) -> Behaviour:
        """The behaviour policy of this learner state, for collecting its next episodes."""
        return Behaviour(params=state.params, t_env=state.t_env, schedule=self.schedule(state))

    def greedy(self, params: Params, t_env: jax.Array | int = 0) -> Behaviour:
        """Greedy evaluation of `params` (act with greedy=True) on envs reset at learner step t_env."""
        return Behaviour(params=params, t_env=jnp.asarray(t_env, jnp.int32), schedule={})

    def observe(self, state: LearnerState, steps: jax.Array, episodes: jax.Array) -> LearnerState:
        """Count newly stored data: env steps (t_env) and episodes, also towards the next target copy."""
        return state.replace(
            t_env=state.t_env + steps,
            episodes=state.episodes + episodes,
            episodes_since_target=state.episodes_since_target + episodes,
        )

    def act(
        self,
        behaviour: Behaviour,
        actor_state: ActorState,
        timestep: Timestep,
        first: jax.Array,
        key: jax.Array,
        greedy: bool,
    ) -> tuple[jax.Array, ActorState]:
        """One action per agent for a batch of E envs; `first` [E] marks episode starts, where the
        recurrent state, the previous action and the policy state are reset."""
        k_policy, k_act = jax.random.split(key)
        fresh = self.initial_actor_state(first.shape[0])
        fresh = fresh.replace(policy_state=self.init_policy_state(k_policy, first.shape[0]))
        actor_state = where_env(first, fresh, actor_state)
        return self.act_fn(behaviour.params, actor_state, timestep, k_act, behaviour.schedule, greedy)

    def update(self, state: LearnerState, batch: Episodes, key: jax.Array) -> tuple[LearnerState, Metrics]:
        """All stages on one sampled batch, then the hard target update check (§1.6, §1.7)."""
        params, opt_states = dict(state.params), dict(state.opt_states)
        carry = Carry(t_env=state.t_env, stats=state.stats)
        metrics: Metrics = {}
        first_update = state.num_updates == 0
        for stage_key, stage in zip(jax.random.split(key, len(self.stages)), self.stages):
            if stage.prepare is not None:
                carry = stage.prepare(params, state.target_params, batch, state.hp, carry)
            opt = self._optimizer(stage)

            def grad_step(step_key, own, opt_state, carry, stage=stage, opt=opt):
                def objective(own_params):
                    return stage.loss({**params, **own_params}, state.target_params, batch, state.hp, step_key, carry)

                (loss, (m, carry_out)), grads = jax.value_and_grad(objective, has_aux=True)(own)
                opt_state.hyperparams["learning_rate"] = stage.learning_rate(state.hp)
                updates, opt_state = opt.update(grads, opt_state, own)
                own = optax.apply_updates(own, updates)
                m = {**m, "loss": loss, "grad_norm": optax.global_norm(grads)}
                return own, opt_state, carry_out, m

            own = {g: params[g] for g in stage.owns}
            opt_state = opt_states[stage.name]
            if stage.steps == 1 and stage.first_steps in (None, 1):
                own, opt_state, carry, m = grad_step(stage_key, own, opt_state, carry)
            else:
                n_steps = (
                    stage.steps
                    if stage.first_steps is None
                    else jnp.where(first_update, stage.first_steps, stage.steps)
                )
                # Step 0 runs outside the loop so the metrics have concrete shapes for the loop carry.
                own, opt_state, carry_out, m = grad_step(stage_key, own, opt_state, carry)

                def body(i, val, stage_key=stage_key, carry=carry):
                    own, opt_state, _, _ = val  # every inner step reads the same prepared carry
                    return grad_step(jax.random.fold_in(stage_key, i), own, opt_state, carry)

                own, opt_state, carry, m = jax.lax.fori_loop(1, n_steps, body, (own, opt_state, carry_out, m))
            params.update(own)
            opt_states[stage.name] = opt_state
            metrics.update({f"{stage.name}/{k}": v for k, v in m.items()})

        copy = state.episodes_since_target >= self.target_update_episodes
        targets = {
            g: jax.tree.map(lambda new, old: jnp.where(copy, new, old), params[g], state.target_params[g])
            for g in self.target_groups
        }
        state = state.replace(
            params=params,
            target_params=targets,
            opt_states=opt_states,
            stats=carry.stats,
            num_updates=state.num_updates + 1,
            episodes_since_target=jnp.where(copy, 0, state.episodes_since_target),
        )
        metrics["target_updated"] = copy.astype(jnp.float32)
        return state, metrics
