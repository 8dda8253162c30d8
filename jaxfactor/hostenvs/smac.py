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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxfactor.errors import ConfigError
from jaxfactor.hostenvs import HOST_ENV_KINDS, HostKind
from jaxfactor.hostenvs.protocol import outcome, seen
from jaxfactor.hostenvs.smac_fake import FakeStarCraft2Env
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
        obs = (
            4 + self.n_enemies * (5 + u + se) + (self.n_agents - 1) * (5 + u + sa) + (1 + sa + u) + 2 * self.obs_own_pos
        )
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
SMACV2_UNITS = {
    "protoss": ("stalker", "zealot", "colossus"),
    "terran": ("marine", "marauder", "medivac"),
    "zerg": ("zergling", "hydralisk", "baneling"),
}  # SMACv2's weighted teams (0.45, 0.45, 0.10)


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
        return {
            **self._seen(),
            **outcome(reward, terminal, truncated=timeout and not terminal, won=bool(info.get("battle_won", False))),
        }

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
    return EnvSpec(
        num_agents=battle.n_agents,
        obs_dim=obs,
        state_dim=state,
        num_actions=actions,
        episode_limit=battle.limit,
        has_win_flag=True,
    )


def _check_real(params: dict[str, Any], package: str) -> None:
    if params["simulator"] == "real":
        missing = real_sc2_missing(package)
        if missing:
            raise ConfigError(
                f"env.simulator=real needs StarCraft II and {package}, but {missing}; install them "
                "(README, 'StarCraft II') or use env.simulator=fake (a protocol-faithful stand-in)"
            )


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
                    "n_units": n,
                    "n_enemies": m,
                    "team_gen": {
                        "dist_type": "weighted_teams",
                        "unit_types": list(units),
                        "weights": [0.45, 0.45, 0.1],
                        "exception_unit_types": [units[2]] if race != "protoss" else [],
                        "observe": True,
                    },
                    "start_positions": {"dist_type": "surrounded_and_reflect", "p": 0.5, "map_x": 32, "map_y": 32},
                }
                return StarCraftCapabilityEnvWrapper(
                    capability_config=capability,
                    map_name=f"10gen_{race}",
                    seed=seed,
                    conic_fov=False,
                    use_unit_ranges=True,
                    min_attack_range=2,
                    obs_own_pos=True,
                    fully_observable=False,
                    continuing_episode=True,
                )

        return SMACHost(_spec(battle), make_env, params["timeout_is_terminal"])
