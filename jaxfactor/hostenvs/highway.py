"""highway-env's multi-agent intersection (highway-env 1.12.1) as a host simulator, in POW's setting.

POW (App. F.6; its code's vendored `intersection_env.py` and `intersec.yaml`): 4 controlled vehicles, one per
approach with a random destination, no background traffic, longitudinal speed actions only (slower, idle,
faster over target speeds 0..10 m/s), 5 Hz simulation and policy, 20 s episodes, and a team reward of -1 per
step, +100 once when every vehicle has arrived, -100 when any crashes (which ends the episode). Stock
highway-env differs and is corrected here: it pays each agent's arrival reward on every step after arrival
(here the team bonus is paid once, on the step the last vehicle arrives), and its `has_arrived` may turn false
again when an arrived car drives on (arrival is latched). Documented choices where the paper is silent:
observations are stock Kinematics rows (presence, x, y, vx, vy, cos h, sin h) of the `observed_vehicles`
nearest vehicles, ego-relative, plus a one-hot of the ego's exit (POW observes 5 route points instead); the
global state is every controlled vehicle's absolute kinematics, arrival and crash flags and exit; the time
limit is `duration * policy_frequency` steps, a truncation. Success (`won`): all arrived and none crashed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxfactor.errors import ConfigError
from jaxfactor.hostenvs import HOST_ENV_KINDS, HostKind
from jaxfactor.hostenvs.protocol import outcome, seen
from jaxfactor.params import boolean, check_params, number
from jaxfactor.spec import EnvSpec

FEATURES = ["presence", "x", "y", "vx", "vy", "cos_h", "sin_h"]
STATE_FEATURES = 12  # x, y, vx, vy, cos h, sin h, arrived, crashed, exit one-hot (4)
DEFAULTS = {
    "controlled_vehicles": 4,
    "traffic": False,
    "observed_vehicles": 4,
    "duration": 20,
    "policy_frequency": 5,
    "simulation_frequency": 5,
    "step_reward": -1.0,
    "arrival_bonus": 100.0,
    "collision_reward": -100.0,
}


class HighwayIntersection:
    def __init__(self, params: Mapping[str, Any]):
        os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")  # headless frames ('dummy' renders black)
        from highway_env.envs.intersection_env import MultiAgentIntersectionEnv

        self.p = dict(params)
        self.n = self.p["controlled_vehicles"]
        self.spec = spec_of(self.p)
        base = MultiAgentIntersectionEnv.default_config()
        observation = {
            "type": "MultiAgentObservation",
            "observation_config": {
                **base["observation"]["observation_config"],
                "features": FEATURES,
                "vehicles_count": self.p["observed_vehicles"],
                "absolute": False,
            },
        }
        action = {
            "type": "MultiAgentAction",
            "action_config": {**base["action"]["action_config"], "target_speeds": [0, 2, 4, 6, 8, 10]},
        }
        traffic = self.p["traffic"]
        self.env = MultiAgentIntersectionEnv(
            config={
                "controlled_vehicles": self.n,
                "destination": None,
                "observation": observation,
                "action": action,
                "initial_vehicle_count": 10 if traffic else 0,
                "spawn_probability": 0.6 if traffic else 0.0,
                "duration": self.p["duration"] + 1,  # our own step count truncates (highway's float clock overshoots)
                "policy_frequency": self.p["policy_frequency"],
                "simulation_frequency": self.p["simulation_frequency"],
            },
            render_mode="rgb_array",
        )
        self.limit = self.spec.episode_limit

    def _exits(self) -> np.ndarray:
        onehot = np.zeros((self.n, 4), np.float32)
        for i, v in enumerate(self.env.controlled_vehicles):
            route = getattr(v, "route", None) or [("", "o0", 0)]
            onehot[i, int(route[-1][1][-1])] = 1.0
        return onehot

    def _seen(self, obs) -> dict[str, np.ndarray]:
        exits = self._exits()
        own = np.stack([np.asarray(o, np.float32).reshape(-1) for o in obs])
        rows = []
        for i, v in enumerate(self.env.controlled_vehicles):
            rows.append(
                [
                    v.position[0] / 100,
                    v.position[1] / 100,
                    v.velocity[0] / 20,
                    v.velocity[1] / 20,
                    np.cos(v.heading),
                    np.sin(v.heading),
                    float(self.arrived[i]),
                    float(v.crashed),
                ]
            )
        state = np.concatenate([np.asarray(rows, np.float32), exits], axis=1)
        return seen(
            self.spec,
            np.concatenate([own, exits], axis=1),
            state.reshape(-1),
            np.ones((self.n, self.spec.num_actions), bool),
        )

    def reset(self, seed: int, t_env: int) -> dict[str, np.ndarray]:
        self.env.reset(seed=int(seed))
        u = self.env
        if not self.p["traffic"]:  # highway-env spawns a 'challenger' car even without traffic
            u.road.vehicles = [v for v in u.road.vehicles if v in u.controlled_vehicles]
        self.arrived, self.t = np.zeros(self.n, bool), 0
        return self._seen(u.observation_type.observe())

    def step(self, actions: np.ndarray) -> dict[str, Any]:
        actions = tuple(int(a) for a in np.asarray(actions).reshape(-1))
        assert len(actions) == self.n and all(0 <= a < 3 for a in actions), actions
        obs, *_ = self.env.step(actions)
        self.t += 1
        self.arrived |= np.array([self.env.has_arrived(v) for v in self.env.controlled_vehicles])
        crashed = any(v.crashed for v in self.env.controlled_vehicles)
        all_arrived = bool(self.arrived.all()) and not crashed
        reward = (
            self.p["collision_reward"]
            if crashed
            else self.p["step_reward"] + (self.p["arrival_bonus"] if all_arrived else 0.0)
        )
        terminal = crashed or all_arrived
        return {**self._seen(obs), **outcome(reward, terminal, truncated=self.t >= self.limit, won=all_arrived)}

    def render(self) -> np.ndarray:
        return np.asarray(self.env.render(), np.uint8)

    def close(self) -> None:
        self.env.close()


def spec_of(p: Mapping[str, Any]) -> EnvSpec:
    n = p["controlled_vehicles"]
    return EnvSpec(
        num_agents=n,
        obs_dim=p["observed_vehicles"] * len(FEATURES) + 4,
        state_dim=n * STATE_FEATURES,
        num_actions=3,
        episode_limit=int(round(p["duration"] * p["policy_frequency"])),
        has_win_flag=True,
    )


@HOST_ENV_KINDS.register("highway_intersection")
class Intersection(HostKind):
    """env.kind=highway_intersection: controlled_vehicles (2-4), traffic, observed_vehicles, duration (s),
    policy_frequency and simulation_frequency (Hz), step_reward, arrival_bonus, collision_reward."""

    renders = True

    @classmethod
    def configure(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], EnvSpec]:
        check_params("highway_intersection", params, (), tuple(DEFAULTS))
        p = {**DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
        p["controlled_vehicles"] = number("controlled_vehicles", p["controlled_vehicles"], integer=True, low=2, high=4)
        p["observed_vehicles"] = number("observed_vehicles", p["observed_vehicles"], integer=True, low=1, high=15)
        boolean("traffic", p["traffic"])
        p["duration"] = number("duration", p["duration"], low=0.0, low_open=True, high=3600.0)
        for name in ("policy_frequency", "simulation_frequency"):
            p[name] = number(name, p[name], integer=True, low=1, high=100)
        if p["simulation_frequency"] % p["policy_frequency"]:
            raise ConfigError(
                f"env.simulation_frequency={p['simulation_frequency']} must be a multiple of "
                f"env.policy_frequency={p['policy_frequency']}; allowed: k * policy_frequency"
            )
        for name in ("step_reward", "arrival_bonus", "collision_reward"):
            p[name] = number(name, p[name])
        spec = spec_of(p)
        if spec.episode_limit < 1:
            raise ConfigError(
                f"env.duration={p['duration']} gives no step at {p['policy_frequency']} Hz; allowed: "
                "duration * policy_frequency >= 1"
            )
        return p, spec

    @classmethod
    def make(cls, params: Mapping[str, Any], index: int) -> HighwayIntersection:
        return HighwayIntersection(params)
