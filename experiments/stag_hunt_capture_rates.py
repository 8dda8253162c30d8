"""How often the stag hunt's reward events happen under uniformly random available actions (ALGORITHMS.md
§10.3): captures and mis-catches per episode and the share of transitions that are captures, per grid.
A capture-starved replay buffer is why POW-QMIX needs thousands of updates on predator-prey (experiments/
README.md); this tells which grids would give denser data.

    python -m experiments.stag_hunt_capture_rates --grids 6x6:4:2:50 4x4:4:2:20 3x3:4:2:10

Each grid is ROWSxCOLS:AGENTS:STAGS:EPISODE_LIMIT (penalty -4; the rates do not depend on it).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np

from jaxfactor.envs.stag_hunt import StagHunt
from jaxfactor.rl.policies import uniform_available


def random_play_rates(env: StagHunt, episodes: int, seed: int = 0) -> dict[str, float]:
    """Captures and mis-catch steps per episode, episode length and captures per transition."""

    def episode(key):
        state, ts = env.reset(jax.random.fold_in(key, 0))

        def step(carry, k):
            state, ts, done = carry
            k_act, k_env = jax.random.split(k)
            actions = uniform_available(k_act, ts.avail)
            state, next_ts = env.step(k_env, state, actions)
            live = ~done
            return (state, next_ts, done | next_ts.terminal), (
                (next_ts.reward > 0) & live,
                (next_ts.reward < 0) & live,
                live,
            )

        keys = jax.random.split(jax.random.fold_in(key, 1), env.spec.episode_limit)
        _, (captures, misses, live) = jax.lax.scan(step, (state, ts, np.bool_(False)), keys)
        return captures.sum(), misses.sum(), live.sum()

    captures, misses, length = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(seed), episodes))
    return {
        "captures": float(np.mean(captures)),
        "misses": float(np.mean(misses)),
        "length": float(np.mean(length)),
        "capture_share": float(np.sum(captures) / np.sum(length)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--grids",
        nargs="+",
        default=["6x6:4:2:50", "4x4:2:1:20", "3x3:2:1:20", "4x4:4:2:20", "4x4:6:2:20", "3x3:4:2:10"],
    )
    parser.add_argument("--episodes", type=int, default=2000)
    args = parser.parse_args()
    print(
        "| grid, agents, stags, limit | captures per episode | mis-catch steps per episode | captures per transition |"
    )
    print("|---|---|---|---|")
    for grid in args.grids:
        size, agents, stags, limit = grid.split(":")
        rows, cols = (int(x) for x in size.split("x"))
        env = StagHunt(
            rows=rows, cols=cols, num_agents=int(agents), num_stags=int(stags), penalty=-4.0, episode_limit=int(limit)
        )
        r = random_play_rates(env, args.episodes)
        print(
            f"| {rows}×{cols}, {agents}, {stags}, {limit} | {r['captures']:.3f} | {r['misses']:.2f} | "
            f"{r['capture_share']:.4f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
