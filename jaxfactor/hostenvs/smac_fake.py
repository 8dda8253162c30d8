"""A protocol-faithful stand-in for SMAC's StarCraft2Env (see `smac.py`): SMAC's API, sizes, availability
rules, time limit and in-band self-restart, with a small deterministic battle instead of StarCraft's."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jaxfactor.hostenvs.smac import SC2Map


class FakeStarCraft2Env:
    """SMAC's StarCraft2Env API and sizes with a small deterministic battle: units on a 32 x 32 plane, the
    enemy's heuristic attacks the closest agent in range, each hit removes a fixed share of health."""

    sight, shoot, hit = 9.0, 6.0, 0.25

    def __init__(
        self,
        battle: SC2Map,
        seed: int = 0,
        continuing_episode: bool = True,
        restart_prob: float = 0.0,
        move_amount: float = 2.0,
    ):
        self.battle, self.seed, self.continuing_episode = battle, seed, continuing_episode
        self.restart_prob, self.move_amount = restart_prob, move_amount
        self.n_agents, self.n_enemies, self.episode_limit = battle.n_agents, battle.n_enemies, battle.limit
        self.n_actions = battle.n_actions
        self.rng = np.random.default_rng(seed)
        self.force_restarts = 0
        self.max_reward = self.n_enemies * 10 + 200 + self.n_enemies * 1.0  # SMAC: deaths, win, enemy health

    def get_env_info(self) -> dict[str, int]:
        obs, state, actions = self.battle.sizes()
        return {
            "obs_shape": obs,
            "state_shape": state,
            "n_actions": actions,
            "n_agents": self.n_agents,
            "episode_limit": self.episode_limit,
        }

    def reset(self):
        n, m = self.n_agents, self.n_enemies
        self.ally_pos = np.stack([np.full(n, 10.0), 16 + np.arange(n) - n / 2], 1) + self.rng.normal(0, 0.5, (n, 2))
        self.enemy_pos = np.stack([np.full(m, 15.0), 16 + np.arange(m) - m / 2], 1) + self.rng.normal(0, 0.5, (m, 2))
        self.ally_health, self.enemy_health = np.ones(n), np.ones(m)
        types = max(1, self.battle.unit_type_bits)
        self.ally_type = self.rng.integers(0, types, n) if self.battle.unit_type_bits else np.zeros(n, int)
        self.enemy_type = self.rng.integers(0, types, m) if self.battle.unit_type_bits else np.zeros(m, int)
        self.last_action = np.zeros((n, self.n_actions))
        self.steps, self.won = 0, False
        return self.get_obs(), self.get_state()

    def _dist(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a[:, None] - b[None], axis=-1)

    def get_avail_agent_actions(self, i: int) -> list[int]:
        avail = [0] * self.n_actions
        if self.ally_health[i] <= 0:
            avail[0] = 1  # dead: no-op only
            return avail
        avail[1] = 1
        for k, (dx, dy) in enumerate(((0, 1), (0, -1), (1, 0), (-1, 0))):
            x, y = self.ally_pos[i] + self.move_amount * np.array([dx, dy])
            avail[2 + k] = int(0 <= x <= 32 and 0 <= y <= 32)
        dist = self._dist(self.ally_pos[i : i + 1], self.enemy_pos)[0]
        for j in range(self.n_enemies):
            avail[6 + j] = int(self.enemy_health[j] > 0 and dist[j] <= self.shoot)
        return avail

    def get_avail_actions(self) -> list[list[int]]:
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def _unit_bits(self, t: int) -> list[float]:
        bits = [0.0] * self.battle.unit_type_bits
        if bits:
            bits[t] = 1.0
        return bits

    def get_obs_agent(self, i: int) -> np.ndarray:
        b, sa, se = self.battle, self.battle.a_race == "P", self.battle.b_race == "P"
        alive = self.ally_health[i] > 0
        move = self.get_avail_agent_actions(i)[2:6] if alive else [0] * 4
        feats = [float(x) for x in move]
        avail = self.get_avail_agent_actions(i)
        for j in range(self.n_enemies):
            d = self.enemy_pos[j] - self.ally_pos[i]
            dist = float(np.linalg.norm(d))
            visible = alive and self.enemy_health[j] > 0 and dist < self.sight
            row = (
                [float(avail[6 + j]), dist / self.sight, d[0] / self.sight, d[1] / self.sight, self.enemy_health[j]]
                + ([self.enemy_health[j]] if se else [])
                + self._unit_bits(self.enemy_type[j])
            )
            feats += row if visible else [0.0] * len(row)
        for k in range(self.n_agents):
            if k == i:
                continue
            d = self.ally_pos[k] - self.ally_pos[i]
            dist = float(np.linalg.norm(d))
            visible = alive and self.ally_health[k] > 0 and dist < self.sight
            row = (
                [1.0, dist / self.sight, d[0] / self.sight, d[1] / self.sight, self.ally_health[k]]
                + ([self.ally_health[k]] if sa else [])
                + self._unit_bits(self.ally_type[k])
            )
            feats += row if visible else [0.0] * len(row)
        own = (
            [self.ally_health[i]]
            + ([self.ally_health[i]] if sa else [])
            + (list(self.ally_pos[i] / 32) if b.obs_own_pos else [])
            + self._unit_bits(self.ally_type[i])
        )
        feats += own if alive else [0.0] * len(own)
        return np.asarray(feats, np.float32)

    def get_obs(self) -> list[np.ndarray]:
        return [self.get_obs_agent(i) for i in range(self.n_agents)]

    def get_state(self) -> np.ndarray:
        sa, se = self.battle.a_race == "P", self.battle.b_race == "P"
        centre = np.array([16.0, 16.0])
        state: list[float] = []
        for i in range(self.n_agents):
            row = (
                [self.ally_health[i], 0.0, *((self.ally_pos[i] - centre) / 16)]
                + ([self.ally_health[i]] if sa else [])
                + self._unit_bits(self.ally_type[i])
            )
            state += row if self.ally_health[i] > 0 else [0.0] * len(row)
        for j in range(self.n_enemies):
            row = (
                [self.enemy_health[j], *((self.enemy_pos[j] - centre) / 16)]
                + ([self.enemy_health[j]] if se else [])
                + self._unit_bits(self.enemy_type[j])
            )
            state += row if self.enemy_health[j] > 0 else [0.0] * len(row)
        return np.asarray(state + list(self.last_action.reshape(-1)), np.float32)

    def step(self, actions) -> tuple[float, bool, dict]:
        if self.restart_prob and self.rng.random() < self.restart_prob:
            self.force_restarts += 1  # SMAC's full_restart after a ProtocolError
            return 0, True, {}
        actions = [int(a) for a in actions]
        for i, a in enumerate(actions):
            assert self.get_avail_agent_actions(i)[a] == 1, f"Agent {i} cannot perform action {a}"
        self.last_action = np.eye(self.n_actions)[actions]
        before = self.enemy_health.copy()
        for i, a in enumerate(actions):
            if 2 <= a <= 5:
                self.ally_pos[i] += self.move_amount * np.array(((0, 1), (0, -1), (1, 0), (-1, 0))[a - 2])
            elif a >= 6:
                self.enemy_health[a - 6] = max(0.0, self.enemy_health[a - 6] - self.hit)
        dist = self._dist(self.enemy_pos, self.ally_pos)
        for j in np.flatnonzero(before > 0):  # the enemies that were alive act: attack the closest agent in range
            targets = np.flatnonzero((self.ally_health > 0) & (dist[j] <= self.shoot))
            if targets.size:
                k = targets[np.argmin(dist[j, targets])]
                self.ally_health[k] = max(0.0, self.ally_health[k] - self.hit / 2)
            elif (self.ally_health > 0).any():
                k = np.flatnonzero(self.ally_health > 0)[np.argmin(dist[j, self.ally_health > 0])]
                step = self.ally_pos[k] - self.enemy_pos[j]
                self.enemy_pos[j] += step / max(1e-6, np.linalg.norm(step))
        self.steps += 1
        killed = int(((before > 0) & (self.enemy_health <= 0)).sum())
        reward = float((before - self.enemy_health).sum()) + 10 * killed
        info = {
            "battle_won": False,
            "dead_allies": int((self.ally_health <= 0).sum()),
            "dead_enemies": int((self.enemy_health <= 0).sum()),
        }
        terminated = False
        if not (self.enemy_health > 0).any() and (self.ally_health > 0).any():
            terminated, info["battle_won"], self.won = True, True, True
            reward += 200
        elif not (self.ally_health > 0).any():
            terminated = True
        elif self.steps >= self.episode_limit:
            terminated = True
            if self.continuing_episode:
                info["episode_limit"] = True
        return reward / (self.max_reward / 20), terminated, info

    def close(self) -> None:
        pass
