"""The host backend: collectors for simulators that cannot be jitted (DESIGN.md §2.3.4, issue 16).

Each update mirrors the device chunk's update step (`runner/anakin.py`): the same key stream, E episodes per
lane from resets through `runner/episodes.py`'s layout (simulators stepped only while their episode runs),
then the one shared `learn_step`. Everything JAX is `jit(vmap)` over lanes, so many seeds' learners stay
vmapped while each seed's simulators collect with that seed's policy. Simulators live in a worker pool
(`runner/workers.py`); an episode whose simulator crashed, hung or restarted itself is discarded (never
stored, never counted) and the run goes on.

Simulator seeds derive from the lane's reset keys, so a deterministic simulator replays exactly after a
resume (the keys are in the checkpointed state).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxfactor.algos.base import Algorithm
from jaxfactor.buffers import episode_shapes
from jaxfactor.hostenvs import HostEnvFactory
from jaxfactor.runner.anakin import check_working_memory, greedy_summary
from jaxfactor.runner.episodes import EpisodeWriter, rollout_keys
from jaxfactor.runner.lanes import local_lanes, num_lanes
from jaxfactor.runner.learn import LearnSettings, RunnerState, learn_step, over_lanes, split_update_keys
from jaxfactor.runner.multihost import any_process, from_local, gather, gather_local, is_primary, local, process_count
from jaxfactor.runner.workers import Failure, InlinePool, PoolSettings, ProcessPool, SimulatorFailed
from jaxfactor.structs import Timestep


def default_workers(num_envs: int) -> int:
    return max(1, min(num_envs, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()))


def make_pool(factory: HostEnvFactory, num_envs: int, host_cfg) -> InlinePool | ProcessPool:
    settings = PoolSettings(
        start_method=host_cfg.start_method,
        start_timeout_s=host_cfg.start_timeout_s,
        reset_timeout_s=host_cfg.reset_timeout_s,
        step_timeout_s=host_cfg.step_timeout_s,
        max_consecutive_failures=host_cfg.max_consecutive_failures,
    )
    if host_cfg.pool == "inline":
        return InlinePool(factory, num_envs, settings)
    return ProcessPool(factory, num_envs, host_cfg.workers or default_workers(num_envs), settings)


def _seeds(reset_keys: jax.Array) -> jax.Array:
    """Simulator seeds (31 bits) from reset keys."""
    return jax.vmap(lambda k: jax.random.bits(k, dtype=jnp.uint32) >> 1)(reset_keys)


class HostCollector:
    """Plays one episode in each of lanes x E simulators with per-lane behaviours: `collect(behaviour, act_keys
    [S, T], seeds [S, E], t_env [S], greedy)` -> (Episodes [S, E, T, ...], stats [S, E], valid [S, E])."""

    def __init__(self, algo: Algorithm, pool, lanes: int, num_envs: int):
        self.algo, self.pool, self.S, self.E = algo, pool, lanes, num_envs
        self.spec = algo.spec
        act = lambda greedy: jax.jit(
            jax.vmap(
                functools.partial(algo.act, greedy=greedy),  # noqa: E731
                in_axes=(0, 0, 0, None, 0),
            )
        )
        self._act = {False: act(False), True: act(True)}
        self._initial_actor = jax.jit(jax.vmap(lambda _: algo.initial_actor_state(num_envs)))(jnp.arange(lanes))
        self.act_s = self.step_s = 0.0
        self.early_stops = 0  # collections that ended before the limit slot (every episode over)

    def collect(self, behaviour, act_keys, seeds: np.ndarray, t_env: np.ndarray, greedy: bool):
        S, E, spec = self.S, self.E, self.spec
        M, N, L = S * E, spec.num_agents, spec.episode_limit
        obs = np.zeros((M, N, spec.obs_dim), np.float32)
        state = np.zeros((M, spec.state_dim), np.float32)
        avail = np.ones((M, N, spec.num_actions), bool)
        valid, in_band = np.ones(M, bool), np.zeros(M, bool)
        t0 = time.perf_counter()
        for i, r in self.pool.reset(seeds.reshape(M), np.repeat(t_env, E)).items():
            if isinstance(r, Failure):
                valid[i] = False
            else:
                obs[i], state[i], avail[i] = r["obs"], r["state"], r["avail"]
        self.step_s += time.perf_counter() - t0
        writer, actor = EpisodeWriter(spec, (S, E)), self._initial_actor
        no_reward, no_flag = jnp.zeros((S, E), jnp.float32), jnp.zeros((S, E), bool)
        writer.carry.over[~valid.reshape(S, E)] = True  # a failed reset: nothing of it is kept
        for t in range(L + 1):
            seen = obs.reshape(S, E, N, -1).copy(), state.reshape(S, E, -1).copy(), avail.reshape(S, E, N, -1).copy()
            t0 = time.perf_counter()
            ts = Timestep(obs=seen[0], state=seen[1], avail=seen[2], reward=no_reward, terminal=no_flag, won=no_flag)
            if not writer.flags(t)[0].any():  # every episode is over: nothing real is left to collect
                if not greedy:  # the layout's padding, as the device rollout writes it (buffers stay bit-identical)
                    zero, false = np.zeros((S, E), np.float32), np.zeros((S, E), bool)
                    for u in range(t, L + 1):
                        writer.write(u, *seen, np.zeros((S, E, N), np.int32), zero, false, false, false)
                self.act_s += time.perf_counter() - t0
                self.early_stops += 1
                break
            actions, actor = self._act[greedy](behaviour, actor, ts, jnp.full((E,), t == 0), act_keys[:, t])
            actions = np.asarray(actions)
            t1 = time.perf_counter()
            _, real = writer.flags(t)
            running = real.reshape(M) & valid
            reward, terminal = np.zeros(M, np.float32), np.zeros(M, bool)
            won, truncated = np.zeros(M, bool), np.zeros(M, bool)
            if running.any():
                flat = actions.reshape(M, N)
                for i, r in self.pool.step({int(i): flat[i] for i in np.flatnonzero(running)}).items():
                    if isinstance(r, Failure) or r["invalid"]:
                        valid[i], in_band[i] = False, not isinstance(r, Failure)
                        writer.carry.over[i // E, i % E] = True  # discarded: never stepped again
                        continue
                    obs[i], state[i], avail[i] = r["obs"], r["state"], r["avail"]
                    reward[i], terminal[i], won[i], truncated[i] = r["reward"], r["terminal"], r["won"], r["truncated"]
            self.act_s += t1 - t0
            self.step_s += time.perf_counter() - t1
            lead = (S, E)
            writer.write(
                t,
                *seen,
                actions,
                reward.reshape(lead),
                terminal.reshape(lead),
                won.reshape(lead),
                truncated.reshape(lead),
            )
        for i in range(M):
            self.pool.episode_done(i, bool(valid[i]), bool(in_band[i]))
        return writer.episodes(), writer.stats(), valid.reshape(S, E)


class HostBackend:
    """The run loop's collector for host simulators: U host updates per chunk, the same metrics [lanes, U] as
    the compiled chunk (plus host/discarded), greedy evaluation that re-runs crashed episodes."""

    def __init__(self, setup, on_trace: Callable[[], None] = lambda: None, pool=None):
        cfg, algo = setup.cfg, setup.algo
        self.cfg, self.algo, self.sharding = cfg, algo, setup.sharding
        # S: this process's lanes (all of them in one process); their simulators are this process's
        self.S, self.E, self.L = local_lanes(cfg), cfg.algo.num_envs, algo.spec.episode_limit
        self.lanes = num_lanes(cfg)
        self.updates = setup.plan.updates_per_chunk
        E, L, a = self.E, self.L, cfg.algo
        settings = LearnSettings(a.batch_size, a.length_buckets, a.epochs, a.learning_starts)

        def begin(runner: RunnerState):
            key, k_collect, k_learn = split_update_keys(runner.key)
            reset_keys, act_keys, _ = rollout_keys(k_collect, E, L)
            return key, k_learn, algo.behaviour(runner.learner), _seeds(reset_keys), act_keys

        def finish(runner: RunnerState, key, k_learn, episodes, stats, valid):
            on_trace()  # runs at trace time only
            active = runner.learner.t_env < cfg.total_timesteps  # a lane past its budget stays frozen
            learner, buffer, metrics = learn_step(
                algo, runner.learner, runner.buffer, episodes, stats, valid, k_learn, settings, active
            )
            key = jnp.where(active, key, runner.key)
            metrics["host/discarded"] = jnp.sum(~valid).astype(jnp.float32)
            return RunnerState(learner=learner, buffer=buffer, key=key), metrics

        def eval_keys(key, round_index):
            reset_keys, act_keys, _ = rollout_keys(jax.random.fold_in(key, round_index), E, L)
            return _seeds(reset_keys), act_keys

        self._begin = jax.jit(jax.vmap(begin))
        self._finish = jax.jit(over_lanes(finish), donate_argnums=0, out_shardings=(setup.sharding, None))
        self._greedy = jax.jit(jax.vmap(algo.greedy))
        self._eval_keys = jax.jit(jax.vmap(eval_keys, in_axes=(0, None)))
        self.pool = pool if pool is not None else make_pool(setup.env, self.S * E, cfg.host)
        self.collector = HostCollector(algo, self.pool, self.S, E)
        self.learn_s = 0.0

    def compile(self, runner: RunnerState) -> float:
        """Compiles the learn step for this state's shapes (acting compiles on the first slot)."""
        t0 = time.perf_counter()
        lead = (self.lanes, self.E)
        laid_out = self.sharding if process_count() > 1 else None  # as `from_local` hands them over

        def spec(shape, dtype):
            return jax.ShapeDtypeStruct(lead + tuple(shape), dtype, sharding=laid_out)

        episodes = jax.tree.map(lambda s: spec(s.shape, s.dtype), episode_shapes(self.algo.spec))
        stats = {"return": spec((), jnp.float32), "length": spec((), jnp.int32), "won": spec((), jnp.float32)}
        runner = jax.device_put(runner, self.sharding)
        key, k_learn, *_ = jax.eval_shape(self._begin, runner)
        self._finish = self._finish.lower(runner, key, k_learn, episodes, stats, spec((), bool)).compile()
        check_working_memory(self._finish, self.S, self.cfg.algo.batch_size)
        return time.perf_counter() - t0

    def update(self, runner: RunnerState) -> tuple[RunnerState, dict]:
        runner = jax.device_put(runner, self.sharding)  # as `finish` returns it: acting compiles once
        key, k_learn, *acting = self._begin(runner)
        behaviour, seeds, act_keys = local(acting)  # this process's lanes
        episodes, stats, valid = self._collect(
            behaviour, act_keys, np.asarray(seeds), np.asarray(behaviour.t_env), greedy=False
        )
        t0 = time.perf_counter()
        runner, metrics = self._finish(runner, key, k_learn, *from_local((episodes, stats, valid), self.sharding))
        metrics = gather(metrics)
        self.learn_s += time.perf_counter() - t0
        return runner, metrics

    def _collect(self, *args, greedy: bool):
        """The collector's episodes; a simulator failing in any process stops every process together (the others
        would wait for it at the next collective)."""
        failure = None
        try:
            out = self.collector.collect(*args, greedy=greedy)
        except SimulatorFailed as e:
            failure = e
        if process_count() > 1 and any_process(failure is not None):
            raise failure or SimulatorFailed(
                "a simulator of another process failed repeatedly (its traceback is in that process's output)"
            )
        if failure is not None:
            raise failure
        return out

    def chunk(self, runner: RunnerState) -> tuple[RunnerState, dict[str, np.ndarray]]:
        per_update = []
        for _ in range(self.updates):
            runner, metrics = self.update(runner)
            per_update.append(metrics)
        return runner, {k: np.stack([m[k] for m in per_update], axis=1) for k in per_update[0]}

    def evaluate(self, runner: RunnerState, keys: jax.Array) -> dict[str, np.ndarray]:
        return self.evaluate_params(runner.learner.params, runner.learner.t_env, keys, self.cfg.env.test_episodes)

    def evaluate_params(self, params, t_env: jax.Array, keys: jax.Array, need: int) -> dict[str, np.ndarray]:
        """`need` greedy episodes per lane, in rounds of E per lane; crashed episodes are re-run."""
        behaviour, t_env = local((self._greedy(params, t_env), t_env))
        t_env = np.asarray(t_env)
        kept: list[list[dict]] = [[] for _ in range(self.S)]
        round_index = 0
        # Rounds until every lane of every process has `need` (all processes run the same rounds: the keys of a
        # round are one computation over every process's lanes)
        while any_process(min(len(k) for k in kept) < need):
            seeds, act_keys = local(self._eval_keys(keys, round_index))
            _, stats, valid = self._collect(behaviour, act_keys, np.asarray(seeds), t_env, greedy=True)
            for s in range(self.S):
                for e in np.flatnonzero(valid[s])[: need - len(kept[s])]:
                    kept[s].append({k: v[s, e] for k, v in stats.items()})
            round_index += 1
        mine = {k: np.array([[ep[k] for ep in lane] for lane in kept]) for k in kept[0][0]}
        return greedy_summary(gather_local(mine))

    def stats(self) -> dict[str, Any]:
        """Crash counts and workers summed over the processes; timings are this process's."""
        c = self.collector
        counts = {**self.pool.stats.as_dict(), "workers": getattr(self.pool, "num_workers", 0)}
        summed = gather_local(np.array([list(counts.values())], np.int64)).sum(0)
        return {
            **dict(zip(counts, map(int, summed))),
            "collect_act_s": round(c.act_s, 3),
            "collect_simulator_s": round(c.step_s, 3),
            "learn_s": round(self.learn_s, 3),
        }

    def restore_stats(self, saved: dict[str, Any]) -> None:
        """Counts of a resumed run continue from its checkpoint's (summed over processes: process 0 carries them)."""
        if not is_primary():
            return
        for name in self.pool.stats.as_dict():
            setattr(self.pool.stats, name, getattr(self.pool.stats, name) + int(saved.get(name, 0)))

    def close(self) -> None:
        self.pool.close()


def record_episode(
    algo: Algorithm, factory: HostEnvFactory, params, key: jax.Array, t_env: int, max_steps: int | None = None
) -> tuple[list[np.ndarray], dict[str, float]]:
    """One greedy episode of one lane's `params` in a simulator of this process, with the simulator's frames
    after the reset and after every step (for `evaluate render=true`)."""
    spec = algo.spec
    env = factory.make(0)
    reset_keys, act_keys, _ = rollout_keys(key, 1, spec.episode_limit)
    behaviour = algo.greedy(params, t_env)
    act = jax.jit(functools.partial(algo.act, greedy=True))
    try:
        ts = env.reset(int(_seeds(reset_keys)[0]), int(t_env))
        frames, actor, ret, won, length = [env.render()], algo.initial_actor_state(1), 0.0, False, 0
        for t in range(min(spec.episode_limit, max_steps or spec.episode_limit)):
            seen = Timestep(
                obs=ts["obs"][None],
                state=ts["state"][None],
                avail=ts["avail"][None],
                reward=jnp.zeros(1),
                terminal=jnp.zeros(1, bool),
                won=jnp.zeros(1, bool),
            )
            actions, actor = act(behaviour, actor, seen, jnp.array([t == 0]), act_keys[t])
            ts = env.step(np.asarray(actions)[0])
            frames.append(env.render())
            ret, won, length = ret + float(ts["reward"]), won or bool(ts["won"]), length + 1
            if ts["terminal"] or ts["truncated"] or ts["invalid"]:
                break
    finally:
        env.close()
    return frames, {"return": ret, "won": float(won), "length": length}
