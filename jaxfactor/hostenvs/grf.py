"""Google Research Football (gfootball 2.10.2) as a host simulator, and a protocol-faithful fake.

Settings follow the PyMARL-family GRF wrappers used by S2Q and NM-QMIX (hijkzzz/pymarl2 `FootballEnv`): the
left team's outfield players are the agents (`number_of_left_players_agent_controls`), `simple115v2`
observations (115 per player), every one of the 19 actions always available, the team reward is the sum of
the players' rewards (a goal is worth +n; `env.reward_mode=mean` gives +1) and the global state is the
players' observations concatenated. GRF ends an academy episode on a goal, when the ball goes out of play or
on a change of possession: those are terminal; the runner's time limit (`env.time_limit`, 150 steps in the
papers) is a truncation unless `env.timeout_is_terminal=true` (PyMARL2's convention). `won` = our team scored.
gfootball takes its seed at construction (`game_engine_random_seed`): the wrapper builds the game at its first
reset with that reset's seed; later episodes draw from the engine's RNG (reproducible in distribution only).

gfootball has no wheels and clashes with highway-env's pygame-ce, so it installs into its own environment
(`scripts/install_gfootball.sh`); `env.simulator=fake` runs `FakeFootballEnv` (gfootball's multi-agent
`reset`/`step` shapes and dtypes, a ball that our players carry towards goal) where it is absent.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxfactor.errors import ConfigError
from jaxfactor.hostenvs import HOST_ENV_KINDS, HostKind
from jaxfactor.hostenvs.protocol import outcome, seen
from jaxfactor.params import boolean, check_params, choice, number
from jaxfactor.spec import EnvSpec

OBS_DIM, NUM_ACTIONS = 115, 19  # simple115v2; gfootball's action_set_v1
SCENARIOS = {  # name: (agents, gfootball scenario); academy_4_vs_3 is S2Q's, shipped in grf_scenarios/
    "academy_3_vs_1_with_keeper": (3, "academy_3_vs_1_with_keeper"),
    "academy_counterattack_easy": (4, "academy_counterattack_easy"),
    "academy_counterattack_hard": (4, "academy_counterattack_hard"),
    "academy_4_vs_3": (4, "academy_4_vs_3"),
    "academy_run_pass_and_shoot_with_keeper": (2, "academy_run_pass_and_shoot_with_keeper"),
}
PARAMS = ("simulator", "num_agents", "time_limit", "rewards", "reward_mode", "timeout_is_terminal")


class FakeFootballEnv:
    """gfootball's multi-agent API (`reset() -> obs [n, 115]`, `step(list of n ints) -> (obs, rewards [n], done,
    info with score_reward)`): the ball advances with every player running right (action 5) or shooting near
    goal (action 12); possession is lost at random. A stand-in for the protocol, not football."""

    def __init__(self, num_agents: int, seed: int):
        self.n, self.rng = num_agents, np.random.default_rng(seed)

    def _obs(self) -> np.ndarray:
        obs = np.full((self.n, OBS_DIM), -1.0, np.float32)
        obs[:, :88] = 0.0
        obs[:, 88:91] = (self.ball, 0.0, 0.0)
        obs[:, 94:97] = (0.0, 1.0, 0.0)  # ball owned by the left team
        obs[np.arange(self.n), 97 + np.arange(self.n)] = 1.0  # active player one-hot
        obs[:, 108:115] = 0.0
        obs[:, 108] = 1.0  # normal game mode
        return obs

    def reset(self) -> np.ndarray:
        self.ball = 0.6 + 0.05 * self.rng.standard_normal()
        return self._obs()

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, bool, dict]:
        actions = [int(a) for a in actions]
        assert len(actions) == self.n and all(0 <= a < NUM_ACTIONS for a in actions), actions
        self.ball += 0.02 * sum(a == 5 for a in actions) / self.n
        scored = self.ball > 0.85 and any(a == 12 for a in actions)
        lost = self.rng.random() < 0.03
        reward = 1.0 if scored else 0.0
        return self._obs(), np.full(self.n, reward, np.float32), bool(scored or lost), {"score_reward": reward}

    def close(self) -> None:
        pass


class FootballHost:
    def __init__(self, spec: EnvSpec, make_env, p: Mapping[str, Any]):
        self.spec, self.make_env, self.p = spec, make_env, p
        self.env, self.t = None, 0

    def _seen(self, obs) -> dict[str, np.ndarray]:
        obs = np.asarray(obs, np.float32).reshape(self.spec.num_agents, OBS_DIM)
        return seen(self.spec, obs, obs.reshape(-1), np.ones((self.spec.num_agents, NUM_ACTIONS), bool))

    def reset(self, seed: int, t_env: int) -> dict[str, np.ndarray]:
        if self.env is None:
            self.env = self.make_env(seed)  # gfootball takes its seed at construction
        self.t = 0
        return self._seen(self.env.reset())

    def step(self, actions: np.ndarray) -> dict[str, Any]:
        obs, rewards, done, info = self.env.step([int(a) for a in np.asarray(actions).reshape(-1)])
        self.t += 1
        rewards = np.asarray(rewards, np.float32).reshape(-1)
        reward = float(rewards.sum() if self.p["reward_mode"] == "sum" else rewards.mean())
        timeout = self.t >= self.p["time_limit"] and not done
        terminal = bool(done) or (timeout and self.p["timeout_is_terminal"])
        return {
            **self._seen(obs),
            **outcome(
                reward, terminal, truncated=timeout and not terminal, won=float(info.get("score_reward", 0.0)) > 0
            ),
        }

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


@HOST_ENV_KINDS.register("grf")
class Football(HostKind):
    """env.kind=grf: env.scenario, env.simulator (real | fake), env.num_agents, env.time_limit, env.rewards
    (scoring | scoring,checkpoints), env.reward_mode (sum | mean), env.timeout_is_terminal."""

    @classmethod
    def configure(cls, params: Mapping[str, Any]) -> tuple[dict[str, Any], EnvSpec]:
        check_params("grf", params, ("scenario",), PARAMS)
        p = dict(params)
        choice("scenario", p["scenario"], list(SCENARIOS))
        choice("simulator", p.setdefault("simulator", "real"), ("real", "fake"))
        default_agents = SCENARIOS[p["scenario"]][0]
        agents = default_agents if p.get("num_agents") is None else p["num_agents"]
        p["num_agents"] = number("num_agents", agents, integer=True, low=1, high=11)
        p["time_limit"] = number("time_limit", p.get("time_limit", 150), integer=True, low=1, high=3000)
        choice("rewards", p.setdefault("rewards", "scoring"), ("scoring", "scoring,checkpoints"))
        choice("reward_mode", p.setdefault("reward_mode", "sum"), ("sum", "mean"))
        boolean("timeout_is_terminal", p.setdefault("timeout_is_terminal", False))
        if p["simulator"] == "real" and importlib.util.find_spec("gfootball") is None:
            raise ConfigError(
                "env.simulator=real needs Google Research Football, but the 'gfootball' package is not "
                "installed; install it into its own environment (scripts/install_gfootball.sh) or use "
                "env.simulator=fake (a protocol-faithful stand-in)"
            )
        n = p["num_agents"]
        return p, EnvSpec(
            num_agents=n,
            obs_dim=OBS_DIM,
            state_dim=n * OBS_DIM,
            num_actions=NUM_ACTIONS,
            episode_limit=p["time_limit"],
            has_win_flag=True,
        )

    @classmethod
    def make(cls, params: Mapping[str, Any], index: int) -> FootballHost:
        p = dict(params)
        _, spec = cls.configure(p)
        if p["simulator"] == "fake":

            def make_env(seed):
                return FakeFootballEnv(p["num_agents"], seed)
        else:

            def make_env(seed):
                import gfootball.env as football

                return football.create_environment(
                    env_name=SCENARIOS[p["scenario"]][1],
                    representation="simple115v2",
                    rewards=p["rewards"],
                    number_of_left_players_agent_controls=p["num_agents"],
                    stacked=False,
                    render=False,
                    other_config_options={"game_engine_random_seed": int(seed)},
                )

        return FootballHost(spec, make_env, p)
