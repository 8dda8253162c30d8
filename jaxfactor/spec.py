"""The static description of an environment, JAX-free so that host-simulator workers import it cheaply."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static description of a (single, unbatched) environment."""

    num_agents: int
    obs_dim: int
    state_dim: int
    num_actions: int
    episode_limit: int
    has_win_flag: bool
    obs_dtype: str = "float32"
    """How replay stores obs and state: an integer type (uint8) where the env's values are small integers
    (grid channels, counters), exact and 4x smaller; learners always read float32."""


@dataclasses.dataclass(frozen=True)
class AgentInputs:
    """What each agent's network sees besides its observation (ALGORITHMS.md §1.3): the one-hot previous
    action and the one-hot agent id. Set per env preset (`env.obs_last_action`, `env.obs_agent_id`)."""

    obs_last_action: bool
    obs_agent_id: bool
