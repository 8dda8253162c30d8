"""StarCraft II through SMAC and SMACv2 (oxwhirl/smac, oxwhirl/smacv2), and a protocol-faithful fake.

The real simulator needs the `smac` (or `smacv2`) package and the StarCraft II binary with its maps
(`SC2PATH`); neither installs from PyPI, so `env.simulator=fake` runs `FakeStarCraft2Env`: SMAC's API
(`reset`, `step -> (reward, terminated, info)`, `get_obs`, `get_state`, `get_avail_actions`, `force_restarts`),
its sizes (obs, state and action formulas of `starcraft2.py` with default flags), its availability rules (a
dead agent may only no-op; an unavailable action raises, as `get_agent_action` asserts), its time limit (with
`continuing_episode`, `info["episode_limit"]`) and its in-band self-restart (`full_restart`: `0, True, {}`).
Its combat is a small stand-in (units on a plane, focus fire pays), not StarCraft's.

Semantics (`SMACHost`): a battle won or lost is terminal; SMAC's time limit is a truncation unless
`env.timeout_is_terminal=true` (PyMARL's convention); a changed `force_restarts` or an empty info marks the
episode invalid (discarded: PyMARL stores it as a real terminal with reward 0). SC2 takes its seed when it
launches: the wrapper launches at its first reset with that reset's seed, so episodes are reproducible in
distribution only (SC2's own RNG draws the rest).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from jaxfactor.errors import ConfigError
from jaxfactor.hostenvs import HOST_ENV_KINDS, HostKind
from jaxfactor.hostenvs.protocol import outcome, seen
from jaxfactor.params import boolean, check_params, choice, number
from jaxfactor.spec import EnvSpec


@dataclasses.dataclass(frozen=True)
class SC2Map:
    """One battle's sizes (oxwhirl/smac smac_maps.py; SMACv2's 10gen_* maps with their team sizes)."""

    n_agents: int
    n_enemies: int
    limit: int
    a_race: str  # P, T, Z: Protoss units carry shields
    b_race: str
    unit_type_bits: int
    map_type: str
    obs_own_pos: bool = False  # SMACv2's own (x, y)

    @property
    def n_actions(self) -> int:
        return 6 + self.n_enemies  # no-op, stop, 4 moves, one attack (or heal) per enemy

    def sizes(self) -> tuple[int, int, int]:
        """(obs, state, actions) of starcraft2.py's get_obs_size / get_state_size with default flags."""
        u, sa, se = self.unit_type_bits, int(self.a_race == "P"), int(self.b_race == "P")
        obs = 4 + self.n_enemies * (5 + u + se) + (self.n_agents - 1) * (5 + u + sa) + (1 + sa + u) \
            + 2 * self.obs_own_pos
        state = self.n_agents * (4 + sa + u) + self.n_enemies * (3 + se + u) + self.n_agents * self.n_actions
        return obs, state, self.n_actions


SMAC_MAPS = {  # name: (agents, enemies, limit, our race, their race, unit-type bits, map type)
    "3m": SC2Map(3, 3, 60, "T", "T", 0, "marines"),
    "8m": SC2Map(8, 8, 120, "T", "T", 0, "marines"),
    "25m": SC2Map(25, 25, 150, "T", "T", 0, "marines"),
    "5m_vs_6m": SC2Map(5, 6, 70, "T", "T", 0, "marines"),
    "8m_vs_9m": SC2Map(8, 9, 120, "T", "T", 0, "marines"),
    "10m_vs_11m": SC2Map(10, 11, 150, "T", "T", 0, "marines"),
    "27m_vs_30m": SC2Map(27, 30, 180, "T", "T", 0, "marines"),
    "MMM": SC2Map(10, 10, 150, "T", "T", 3, "MMM"),
    "MMM2": SC2Map(10, 12, 180, "T", "T", 3, "MMM"),
    "2s3z": SC2Map(5, 5, 120, "P", "P", 2, "stalkers_and_zealots"),
    "3s5z": SC2Map(8, 8, 150, "P", "P", 2, "stalkers_and_zealots"),
    "3s5z_vs_3s6z": SC2Map(8, 9, 170, "P", "P", 2, "stalkers_and_zealots"),
    "1c3s5z": SC2Map(9, 9, 180, "P", "P", 3, "colossi_stalkers_zealots"),
    "3s_vs_3z": SC2Map(3, 3, 150, "P", "P", 0, "stalkers"),
    "3s_vs_4z": SC2Map(3, 4, 200, "P", "P", 0, "stalkers"),
    "3s_vs_5z": SC2Map(3, 5, 250, "P", "P", 0, "stalkers"),
    "2s_vs_1sc": SC2Map(2, 1, 300, "P", "Z", 0, "stalkers"),
    "corridor": SC2Map(6, 24, 400, "P", "Z", 0, "zealots"),
    "so_many_baneling": SC2Map(7, 32, 100, "P", "Z", 0, "zealots"),
    "2c_vs_64zg": SC2Map(2, 64, 400, "P", "Z", 0, "colossus"),
    "6h_vs_8z": SC2Map(6, 8, 150, "Z", "P", 0, "hydralisks"),
    "bane_vs_bane": SC2Map(24, 24, 200, "Z", "Z", 2, "bane"),
}
SMACV2_RACES = {"protoss": "P", "terran": "T", "zerg": "Z"}
SMACV2_UNITS = {"protoss": ("stalker", "zealot", "colossus"), "terran": ("marine", "marauder", "medivac"),
                "zerg": ("zergling", "hydralisk", "baneling")}  # SMACv2's weighted teams (0.45, 0.45, 0.10)


def smacv2_map(race: str, n_units: int, n_enemies: int) -> SC2Map:
    """SMACv2's 10gen_<race> map with its team sizes (limit 200, 3 unit-type bits, own position observed)."""
    r = SMACV2_RACES[race]
    return SC2Map(n_units, n_enemies, 200, r, r, 3, f"{race}_gen", obs_own_pos=True)


def real_sc2_missing(package: str) -> str | None:
    """Why the real simulator cannot run here (None when it can)."""
    if importlib.util.find_spec(package) is None:
        return f"the '{package}' package is not installed"
    root = os.environ.get("SC2PATH", str(Path.home() / "StarCraftII"))
    if not (Path(root) / "Versions").is_dir():
        return f"no StarCraft II binary at SC2PATH={root} (no Versions/ folder)"
    return None


class FakeStarCraft2Env:
    """SMAC's StarCraft2Env API and sizes with a small deterministic battle: units on a 32 x 32 plane, the
    enemy's heuristic attacks the closest agent in range, each hit removes a fixed share of health."""

    sight, shoot, hit = 9.0, 6.0, 0.25

    def __init__(self, battle: SC2Map, seed: int = 0, continuing_episode: bool = True, restart_prob: float = 0.0,
                 move_amount: float = 2.0):
        self.battle, self.seed, self.continuing_episode = battle, seed, continuing_episode
        self.restart_prob, self.move_amount = restart_prob, move_amount
        self.n_agents, self.n_enemies, self.episode_limit = battle.n_agents, battle.n_enemies, battle.limit
        self.n_actions = battle.n_actions
        self.rng = np.random.default_rng(seed)
        self.force_restarts = 0
        self.max_reward = self.n_enemies * 10 + 200 + self.n_enemies * 1.0  # SMAC: deaths, win, enemy health

    def get_env_info(self) -> dict[str, int]:
        obs, state, actions = self.battle.sizes()
        return {"obs_shape": obs, "state_shape": state, "n_actions": actions, "n_agents": self.n_agents,
                "episode_limit": self.episode_limit}

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
        dist = self._dist(self.ally_pos[i:i + 1], self.enemy_pos)[0]
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
            row = [float(avail[6 + j]), dist / self.sight, d[0] / self.sight, d[1] / self.sight,
                   self.enemy_health[j]] + ([self.enemy_health[j]] if se else []) + self._unit_bits(self.enemy_type[j])
            feats += row if visible else [0.0] * len(row)
        for k in range(self.n_agents):
            if k == i:
                continue
            d = self.ally_pos[k] - self.ally_pos[i]
            dist = float(np.linalg.norm(d))
            visible = alive and self.ally_health[k] > 0 and dist < self.sight
            row = [1.0, dist / self.sight, d[0] / self.sight, d[1] / self.sight, self.ally_health[k]] + \
                ([self.ally_health[k]] if sa else []) + self._unit_bits(self.ally_type[k])
            feats += row if visible else [0.0] * len(row)
        own = [self.ally_health[i]] + ([self.ally_health[i]] if sa else []) + \
            (list(self.ally_pos[i] / 32) if b.obs_own_pos else []) + self._unit_bits(self.ally_type[i])
        feats += own if alive else [0.0] * len(own)
        return np.asarray(feats, np.float32)

    def get_obs(self) -> list[np.ndarray]:
        return [self.get_obs_agent(i) for i in range(self.n_agents)]

    def get_state(self) -> np.ndarray:
        sa, se = self.battle.a_race == "P", self.battle.b_race == "P"
        centre = np.array([16.0, 16.0])
        state: list[float] = []
        for i in range(self.n_agents):
            row = [self.ally_health[i], 0.0, *((self.ally_pos[i] - centre) / 16)] + \
                ([self.ally_health[i]] if sa else []) + self._unit_bits(self.ally_type[i])
            state += row if self.ally_health[i] > 0 else [0.0] * len(row)
        for j in range(self.n_enemies):
            row = [self.enemy_health[j], *((self.enemy_pos[j] - centre) / 16)] + \
                ([self.enemy_health[j]] if se else []) + self._unit_bits(self.enemy_type[j])
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
        info = {"battle_won": False, "dead_allies": int((self.ally_health <= 0).sum()),
                "dead_enemies": int((self.enemy_health <= 0).sum())}
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


class SMACHost:
    """The host contract over SMAC's StarCraft2Env (real or fake); see the module docstring."""

    def __init__(self, spec: EnvSpec, make_env, timeout_is_terminal: bool):
        self.spec, self.make_env, self.timeout_is_terminal = spec, make_env, timeout_is_terminal
        self.env = None

    def _seen(self) -> dict[str, np.ndarray]:
        return seen(self.spec, np.stack(self.env.get_obs()), self.env.get_state(), self.env.get_avail_actions())

    def reset(self, seed: int, t_env: int) -> dict[str, np.ndarray]:
        if self.env is None:
            self.env = self.make_env(seed)  # SC2 takes its seed at launch
        self.env.reset()
        return self._seen()

    def step(self, actions: np.ndarray) -> dict[str, Any]:
        restarts = self.env.force_restarts
        reward, terminated, info = self.env.step([int(a) for a in actions])
        if self.env.force_restarts != restarts or not info:  # full_restart: `0, True, {}`, not a real ending
            return {**self._seen(), **outcome(0.0, terminal=True, invalid=True)}
        timeout = bool(info.get("episode_limit", False))
        terminal = bool(terminated) and (not timeout or self.timeout_is_terminal)
        return {**self._seen(), **outcome(reward, terminal, truncated=timeout and not terminal,
                                          won=bool(info.get("battle_won", False)))}

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


def _configure_common(kind: str, params: dict[str, Any], required: tuple[str, ...]) -> None:
    check_params(kind, params, required, ("simulator", "timeout_is_terminal", "fake_restart_prob"))
    choice("simulator", params.setdefault("simulator", "real"), ("real", "fake"))
    boolean("timeout_is_terminal", params.setdefault("timeout_is_terminal", False))
    params["fake_restart_prob"] = number("fake_restart_prob", params.get("fake_restart_prob", 0.0), low=0.0, high=1.0)


def _spec(battle: SC2Map) -> EnvSpec:
    obs, state, actions = battle.sizes()
    return EnvSpec(num_agents=battle.n_agents, obs_dim=obs, state_dim=state, num_actions=actions,
                   episode_limit=battle.limit, has_win_flag=True)


def _check_real(params: dict[str, Any], package: str) -> None:
    if params["simulator"] == "real":
        missing = real_sc2_missing(package)
        if missing:
            raise ConfigError(f"env.simulator=real needs StarCraft II and {package}, but {missing}; install them "
                              "(README, 'StarCraft II') or use env.simulator=fake (a protocol-faithful stand-in)")


@HOST_ENV_KINDS.register("smac")
class SMAC(HostKind):
    """env.kind=smac: env.map_name (a SMAC map), env.simulator (real | fake), env.timeout_is_terminal."""

    @classmethod
    def configure(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], EnvSpec]:
        params = dict(params)
        _configure_common("smac", params, ("map_name",))
        choice("map_name", params["map_name"], list(SMAC_MAPS))
        _check_real(params, "smac")
        return params, _spec(SMAC_MAPS[params["map_name"]])

    @classmethod
    def make(cls, params: Mapping[str, Any], index: int) -> SMACHost:
        battle = SMAC_MAPS[params["map_name"]]
        if params["simulator"] == "fake":
            def make_env(seed):
                return FakeStarCraft2Env(battle, seed, restart_prob=params["fake_restart_prob"])
        else:
            def make_env(seed):
                from smac.env import StarCraft2Env

                return StarCraft2Env(map_name=params["map_name"], seed=seed, continuing_episode=True)
        return SMACHost(_spec(battle), make_env, params["timeout_is_terminal"])


@HOST_ENV_KINDS.register("smacv2")
class SMACv2(HostKind):
    """env.kind=smacv2: env.race (protoss | terran | zerg), env.n_units, env.n_enemies, env.simulator."""

    @classmethod
    def configure(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], EnvSpec]:
        params = dict(params)
        _configure_common("smacv2", params, ("race", "n_units", "n_enemies"))
        choice("race", params["race"], list(SMACV2_RACES))
        params["n_units"] = number("n_units", params["n_units"], integer=True, low=1, high=64)
        params["n_enemies"] = number("n_enemies", params["n_enemies"], integer=True, low=1, high=64)
        _check_real(params, "smacv2")
        return params, _spec(smacv2_map(params["race"], params["n_units"], params["n_enemies"]))

    @classmethod
    def make(cls, params: Mapping[str, Any], index: int) -> SMACHost:
        race, n, m = params["race"], params["n_units"], params["n_enemies"]
        battle = smacv2_map(race, n, m)
        if params["simulator"] == "fake":
            def make_env(seed):
                return FakeStarCraft2Env(battle, seed, restart_prob=params["fake_restart_prob"])
        else:
            def make_env(seed):
                from smacv2.env.starcraft2.wrapper import StarCraftCapabilityEnvWrapper

                units = SMACV2_UNITS[race]
                capability = {  # smacv2/examples/configs/sc2_gen_<race>.yaml
                    "n_units": n, "n_enemies": m,
                    "team_gen": {"dist_type": "weighted_teams", "unit_types": list(units),
                                 "weights": [0.45, 0.45, 0.1], "exception_unit_types": [units[2]] if race != "protoss"
                                 else [], "observe": True},
                    "start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.5, "map_x": 32, "map_y": 32}}
                return StarCraftCapabilityEnvWrapper(capability_config=capability, map_name=f"10gen_{race}", seed=seed,
                                                     conic_fov=False, use_unit_ranges=True, min_attack_range=2,
                                                     obs_own_pos=True, fully_observable=False, continuing_episode=True)
        return SMACHost(_spec(battle), make_env, params["timeout_is_terminal"])
