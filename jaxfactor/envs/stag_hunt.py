"""Stag-hunt predator-prey gridworld, jitted (ALGORITHMS.md §10.3; PyMARL2 `stag_hunt.py` semantics).

Agents move on a bounded grid; a stag is captured when >= 2 non-frozen agents 4-adjacent to it
choose "catch" (a hare needs 1). A capture pays `stag_reward` and freezes the catchers (they leave
the grid); a catch attempt that fails costs `penalty` once per prey. Agents then prey act
sequentially in fresh random orders (later movers see earlier moves), so both phases are
`fori_loop`s over `jax.random.permutation`s. The episode terminates when every prey is dead or
every agent is frozen; the step limit is a truncation owned by the runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxfactor.envs.base import ENV_KINDS, check_params, number
from jaxfactor.errors import ConfigError
from jaxfactor.structs import EnvSpec, Timestep

# (row, col) offsets of actions 0..3: right, down, left, up; row 0 is the top (§10.3).
MOVES = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]], np.int32)
STAY, CATCH = 4, 5
NUM_ACTIONS = 6


@struct.dataclass
class StagHuntState:
    agent_pos: jax.Array  # [N, 2] int32 (kept after freezing, but then ignored)
    frozen: jax.Array  # [N] bool
    prey_pos: jax.Array  # [P, 2] int32, stags first, then hares
    prey_alive: jax.Array  # [P] bool
    t: jax.Array  # [] int32 steps taken


@ENV_KINDS.register("stag_hunt")
class StagHunt:
    def __init__(
        self,
        rows: int = 10,
        cols: int = 10,
        num_agents: int = 8,
        num_stags: int = 8,
        num_hares: int = 0,
        obs_window: int = 5,
        penalty: float = 0.0,
        stag_reward: float = 10.0,
        hare_reward: float = 1.0,
        episode_limit: int = 200,
    ):
        for field, value, low in (
            ("rows", rows, 1),
            ("cols", cols, 1),
            ("num_agents", num_agents, 1),
            ("num_stags", num_stags, 0),
            ("num_hares", num_hares, 0),
            ("obs_window", obs_window, 1),
            ("episode_limit", episode_limit, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"env.{field}={value!r} is out of range; allowed: an integer >= {low}")
        if obs_window % 2 == 0:
            raise ConfigError(
                f"env.obs_window={obs_window} must be odd (a window centred on the agent); allowed: 1, 3, 5, ..."
            )
        if num_stags + num_hares < 1:
            raise ConfigError("env.num_stags + env.num_hares must be >= 1 (the game needs prey)")
        if num_agents + num_stags + num_hares > rows * cols:
            raise ConfigError(
                f"env.num_agents + env.num_stags + env.num_hares = "
                f"{num_agents + num_stags + num_hares} exceed the {rows}x{cols} grid's cells"
            )
        # a mis-capture is punished or free, never rewarded
        penalty, stag_reward, hare_reward = (
            number("penalty", penalty, high=0.0),
            number("stag_reward", stag_reward),
            number("hare_reward", hare_reward),
        )
        self.rows, self.cols, self.radius = rows, cols, obs_window // 2
        self.num_prey = num_stags + num_hares
        self.penalty, self.stag_reward, self.hare_reward = float(penalty), float(stag_reward), float(hare_reward)
        self.is_stag = np.arange(self.num_prey) < num_stags
        self.spec = EnvSpec(
            num_agents=num_agents,
            obs_dim=obs_window * obs_window * 3,
            state_dim=rows * cols * 3,
            num_actions=NUM_ACTIONS,
            episode_limit=episode_limit,
            has_win_flag=False,
            obs_dtype="uint8",
        )  # 0/1 occupancy channels

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> StagHunt:
        check_params(
            "stag_hunt",
            params,
            required=(),
            optional=(
                "rows",
                "cols",
                "num_agents",
                "num_stags",
                "num_hares",
                "obs_window",
                "penalty",
                "stag_reward",
                "hare_reward",
                "episode_limit",
            ),
        )
        return cls(**{k: v for k, v in params.items() if v is not None})

    # ----- geometry -------------------------------------------------------------------------------
    def _inside(self, cell: jax.Array) -> jax.Array:
        return (cell[..., 0] >= 0) & (cell[..., 0] < self.rows) & (cell[..., 1] >= 0) & (cell[..., 1] < self.cols)

    @staticmethod
    def _occupied(state: StagHuntState, cell: jax.Array) -> jax.Array:
        """A non-frozen agent or an alive prey stands on `cell` [2]."""
        agent_here = jnp.all(state.agent_pos == cell, -1) & ~state.frozen
        prey_here = jnp.all(state.prey_pos == cell, -1) & state.prey_alive
        return agent_here.any() | prey_here.any()

    def grid(self, state: StagHuntState) -> jax.Array:
        """[rows, cols, 3] indicators: non-frozen agents, alive stags, alive hares."""
        g = jnp.zeros((self.rows, self.cols, 3), jnp.float32)
        ar, ac = state.agent_pos[:, 0], state.agent_pos[:, 1]
        pr, pc = state.prey_pos[:, 0], state.prey_pos[:, 1]
        g = g.at[ar, ac, 0].max((~state.frozen).astype(jnp.float32))
        g = g.at[pr, pc, 1].max((state.prey_alive & self.is_stag).astype(jnp.float32))
        return g.at[pr, pc, 2].max((state.prey_alive & ~self.is_stag).astype(jnp.float32))

    # ----- observations ---------------------------------------------------------------------------
    def _timestep(self, state: StagHuntState, reward: jax.Array, terminal: jax.Array) -> Timestep:
        g = self.grid(state)
        r = self.radius
        padded = jnp.pad(g, ((r, r), (r, r), (0, 0)))
        w = 2 * r + 1

        def window(pos, frozen):  # padded index row + j is grid row (row + j - r)
            view = jax.lax.dynamic_slice(padded, (pos[0], pos[1], 0), (w, w, 3)).reshape(-1)
            return jnp.where(frozen, 0.0, view)

        obs = jax.vmap(window)(state.agent_pos, state.frozen)
        return Timestep(
            obs=obs,
            state=g.reshape(-1),
            avail=self.avail_actions(state),
            reward=reward,
            terminal=terminal,
            won=jnp.array(False),
        )

    def avail_actions(self, state: StagHuntState) -> jax.Array:
        """[N, 6]: moves whose target is inside the grid, stay, catch iff an alive prey is 4-adjacent;
        a frozen agent may only stay."""
        targets = state.agent_pos[:, None, :] + MOVES[None]  # [N, 4, 2]
        moves = self._inside(targets)
        dist = jnp.abs(state.agent_pos[:, None, :] - state.prey_pos[None]).sum(-1)  # [N, P]
        catch = ((dist == 1) & state.prey_alive[None]).any(-1)
        avail = jnp.concatenate([moves, jnp.ones_like(catch)[:, None], catch[:, None]], axis=-1)
        only_stay = jnp.arange(NUM_ACTIONS) == STAY
        return jnp.where(state.frozen[:, None], only_stay[None], avail)

    # ----- dynamics -------------------------------------------------------------------------------
    def reset(self, key: jax.Array, t_env: jax.Array | None = None) -> tuple[StagHuntState, Timestep]:
        del t_env
        n, p = self.spec.num_agents, self.num_prey
        cells = jax.random.choice(key, self.rows * self.cols, (n + p,), replace=False)
        pos = jnp.stack([cells // self.cols, cells % self.cols], -1).astype(jnp.int32)
        state = StagHuntState(
            agent_pos=pos[:n],
            frozen=jnp.zeros((n,), bool),
            prey_pos=pos[n:],
            prey_alive=jnp.ones((p,), bool),
            t=jnp.array(0, jnp.int32),
        )
        return state, self._timestep(state, jnp.array(0.0, jnp.float32), jnp.array(False))

    def step(self, key: jax.Array, state: StagHuntState, actions: jax.Array) -> tuple[StagHuntState, Timestep]:
        actions = jnp.asarray(actions, jnp.int32)
        k_agents, k_prey, k_moves = jax.random.split(key, 3)
        moves = jnp.asarray(MOVES)

        def agent_turn(i, st: StagHuntState) -> StagHuntState:
            a = agent_order[i]
            act = actions[a]
            target = st.agent_pos[a] + moves[jnp.minimum(act, 3)]
            go = (act < 4) & ~st.frozen[a] & self._inside(target) & ~self._occupied(st, target)
            return st.replace(agent_pos=st.agent_pos.at[a].set(jnp.where(go, target, st.agent_pos[a])))

        agent_order = jax.random.permutation(k_agents, self.spec.num_agents)
        state = jax.lax.fori_loop(0, self.spec.num_agents, agent_turn, state)

        is_stag = jnp.asarray(self.is_stag)
        move_keys = jax.random.split(k_moves, self.num_prey)

        def prey_turn(i, carry):
            st, reward = carry
            p = prey_order[i]
            x, alive = st.prey_pos[p], st.prey_alive[p]
            adjacent = ~st.frozen & (jnp.abs(st.agent_pos - x).sum(-1) == 1)  # [N]
            catching = adjacent & (actions == CATCH)
            count = catching.sum()
            captured = alive & (count >= jnp.where(is_stag[p], 2, 1)) & adjacent.any()
            missed = alive & (count > 0) & ~captured  # charged once per prey, however many catchers
            reward = reward + jnp.where(captured, jnp.where(is_stag[p], self.stag_reward, self.hare_reward), 0.0)
            reward = reward + jnp.where(missed, self.penalty, 0.0)
            # An uncaptured prey moves to a uniformly random free neighbour (rest probability 0).
            targets = x + moves  # [4, 2]
            free = self._inside(targets) & ~jax.vmap(lambda c: self._occupied(st, c))(targets)
            choice = jnp.argmax(jnp.where(free, jax.random.uniform(move_keys[p], (4,)), -1.0))
            walks = alive & ~captured & free.any()
            st = st.replace(
                prey_pos=st.prey_pos.at[p].set(jnp.where(walks, targets[choice], x)),
                prey_alive=st.prey_alive.at[p].set(alive & ~captured),
                frozen=st.frozen | (captured & catching),
            )
            return st, reward

        prey_order = jax.random.permutation(k_prey, self.num_prey)
        state, reward = jax.lax.fori_loop(0, self.num_prey, prey_turn, (state, jnp.array(0.0, jnp.float32)))
        state = state.replace(t=state.t + 1)
        terminal = ~state.prey_alive.any() | state.frozen.all()
        return state, self._timestep(state, reward, terminal)
