"""GIFs of greedy episodes: jaxmarl's visualisers for SMAX and MPE, a small grid drawing for the
stag-hunt predator-prey. Host-side only (matplotlib), never inside training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxfactor.algos.base import Algorithm, Params
from jaxfactor.envs.base import JaxEnv, quiet_jaxmarl
from jaxfactor.errors import ConfigError
from jaxfactor.runner.rollout import rollout


def record_episode(
    algo: Algorithm, env: JaxEnv, params: Params, key: jax.Array, t_env: jax.Array | int = 0
) -> dict[str, Any]:
    """One greedy episode of one env through the device rollout: env states before every slot [L+1]
    (repeating the final one after the end), env-step keys and actions [L], and the number of real steps
    (jittable)."""
    L = env.spec.episode_limit
    episodes, stats, trace = rollout(algo, env, algo.greedy(params, t_env), key, 1, greedy=True, record=True)
    first = lambda tree: jax.tree.map(lambda x: x[0], tree)  # noqa: E731  the one env
    return {
        "states": first(trace["states"]),
        "keys": trace["keys"][0, :L],
        "actions": episodes.actions[0, :L],
        "length": stats["length"][0],
    }


def _index(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda x: x[i], tree)


def _smax(env: JaxEnv, ep: dict[str, Any]):
    import matplotlib.pyplot as plt

    # jaxmarl's SMAX renderer, one frame per agent step: its visualiser's expand_state_seq would add the
    # world's inner ticks (x8 frames) at ~0.5 s per frame on a CPU (minutes for a 100-step episode).
    # It marks shots from every unit's attack action (enemies included), which the world records in the
    # next state's prev_attack_actions.
    n = int(ep["length"])
    units = env.env.all_agents
    seq = [
        (
            ep["keys"][t],
            _index(ep["states"], t).state,
            {a: _index(ep["states"], t + 1).state.prev_attack_actions[i] for i, a in enumerate(units)},
        )
        for t in range(n)
    ]
    fig, ax = plt.subplots(figsize=(6, 5))
    return fig, None, lambda frame: env.env.init_render(ax, seq[frame], 0, frame), n


def _mpe(env: JaxEnv, ep: dict[str, Any]):
    quiet_jaxmarl()
    from jaxmarl.environments.mpe.mpe_visualizer import MPEVisualizer

    seq = [_index(ep["states"], t) for t in range(int(ep["length"]) + 1)]
    viz = MPEVisualizer(env.env, seq)
    return viz.fig, None, viz.update, len(seq)


def _stag_hunt(env: JaxEnv, ep: dict[str, Any]):
    import matplotlib.pyplot as plt

    frames = int(ep["length"]) + 1
    states = jax.device_get(ep["states"])
    fig, ax = plt.subplots(figsize=(5, 5 * env.rows / env.cols))

    def update(t: int):
        ax.clear()
        ax.set_xlim(-0.5, env.cols - 0.5)
        ax.set_ylim(env.rows - 0.5, -0.5)
        ax.set_xticks(np.arange(-0.5, env.cols), minor=True)
        ax.set_yticks(np.arange(-0.5, env.rows), minor=True)
        ax.grid(which="minor", color="0.85")
        ax.tick_params(which="both", bottom=False, left=False, labelbottom=False, labelleft=False)
        s = _index(states, t)
        for p, (r, c) in enumerate(s.prey_pos):
            if s.prey_alive[p]:
                stag = bool(env.is_stag[p])
                ax.add_patch(plt.Rectangle((c - 0.4, r - 0.4), 0.8, 0.8, color="firebrick" if stag else "orange"))
        for i, (r, c) in enumerate(s.agent_pos):
            if not s.frozen[i]:
                ax.add_patch(plt.Circle((c, r), 0.35, color="tab:blue"))
                ax.text(c, r, str(i), ha="center", va="center", color="white", fontsize=8)
        ax.set_title(
            f"step {int(s.t)}: {int((~s.frozen).sum())} hunters, "
            f"{int(s.prey_alive[: int(env.is_stag.sum())].sum())} stags left"
        )

    return fig, None, update, frames


RENDERERS: dict[str, Callable] = {"smax": _smax, "mpe_spread": _mpe, "mpe_tag": _mpe, "stag_hunt": _stag_hunt}


def write_gif(env_kind: str, env: JaxEnv, episode: dict[str, Any], path: str | Path, fps: int = 8) -> int:
    """Draws a recorded episode to a GIF; returns the number of frames."""
    if env_kind not in RENDERERS:
        raise ConfigError(
            f"render=true is not available for env kind '{env_kind}'; allowed: {', '.join(sorted(RENDERERS))}"
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import animation

    fig, init, update, frames = RENDERERS[env_kind](env, jax.device_get(episode))
    anim = animation.FuncAnimation(fig, update, frames=frames, init_func=init, blit=False)
    anim.save(str(path), writer=animation.PillowWriter(fps=fps))
    plt.close(fig)
    return frames


def write_frames_gif(frames: list, path: str | Path, fps: int = 5) -> int:
    """A GIF from a simulator's own rgb frames (host simulators such as highway-env)."""
    from PIL import Image

    images = [Image.fromarray(np.asarray(f, np.uint8)) for f in frames]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    images[0].save(str(path), save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return len(images)
