"""`python -m jaxfactor.evaluate run_dir=<dir> [episodes=N] [render=true] [gif=<path>] [render_seed=i]`

Loads a run's saved config and its latest checkpoint (`step=<chunk>` for another one), runs greedy
evaluation for every seed (and grid point) and prints return and win rate; `render=true` writes a GIF
of one greedy episode of seed `render_seed` (SMAX, MPE, stag-hunt predator-prey, highway-env's frames).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from jaxfactor.errors import ConfigError, check_output_path

OPTIONS = {
    "run_dir": None,
    "episodes": None,
    "render": "false",
    "gif": None,
    "render_seed": "0",
    "step": None,
    "max_render_steps": None,
}


def _parse(argv: list[str]) -> dict[str, Any]:
    opts = dict(OPTIONS)
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in OPTIONS:
            raise ConfigError(f"unknown argument '{arg}'; allowed: {', '.join(k + '=...' for k in OPTIONS)}")
        opts[key] = value
    if opts["run_dir"] is None:
        raise ConfigError("run_dir=<a run directory> is required")
    if opts["render"] not in ("true", "false"):
        raise ConfigError(f"render={opts['render']} is not a boolean; allowed: true, false")
    for key in ("episodes", "render_seed", "step", "max_render_steps"):
        if opts[key] is not None:
            try:
                opts[key] = int(opts[key])
            except ValueError:
                raise ConfigError(f"{key}={opts[key]} must be an integer") from None
            if opts[key] < (0 if key in ("render_seed", "step") else 1):
                raise ConfigError(
                    f"{key}={opts[key]} is out of range; allowed: an integer >= "
                    f"{0 if key in ('render_seed', 'step') else 1}"
                )
    if opts["gif"] is not None:
        if opts["render"] != "true":
            raise ConfigError(f"gif={opts['gif']} needs render=true; allowed: render=true gif=<path>.gif")
        check_output_path("gif", opts["gif"], (".gif",))
    return opts


def evaluate(
    run_dir: str,
    episodes: int | None = None,
    render: bool = False,
    gif: str | None = None,
    render_seed: int = 0,
    step: int | None = None,
    max_render_steps: int | None = None,
) -> dict[str, Any]:
    """Greedy evaluation of a saved run; returns per-seed returns (and win rates) and the GIF path."""
    import jax

    from jaxfactor.checkpoint import Checkpointer
    from jaxfactor.config import from_dict
    from jaxfactor.hostenvs import HostEnvFactory
    from jaxfactor.loggers import read_run_config
    from jaxfactor.runner.anakin import greedy_summary, make_evaluate
    from jaxfactor.runner.lanes import abstract_lanes, grid_label, num_lanes, seed_keys, setup

    cfg = from_dict(read_run_config(run_dir))
    if render:
        from jaxfactor.hostenvs import HOST_ENV_KINDS
        from jaxfactor.render import RENDERERS

        rendering = sorted(RENDERERS) + [k for k in HOST_ENV_KINDS.names() if HOST_ENV_KINDS.get(k).renders]
        if cfg.env.kind not in rendering:  # before any work
            raise ConfigError(
                f"render=true is not available for env kind '{cfg.env.kind}'; allowed: {', '.join(sorted(rendering))}"
            )
    total = num_lanes(cfg)
    if not 0 <= render_seed < total:
        raise ConfigError(f"render_seed={render_seed} is out of range; allowed: 0..{total - 1}")
    s = setup(cfg)
    env, algo, sharding = s.env, s.algo, s.sharding
    ckpt = Checkpointer(run_dir, cfg.checkpoint.max_to_keep, cfg.checkpoint.buffer)
    try:  # the parameters only: replay buffers and optimiser states stay on disk
        params, meta = ckpt.restore_params(abstract_lanes(cfg, algo, sharding).learner.params, step)
    finally:
        ckpt.close()
    t_env = jax.device_put(np.asarray(meta["env_steps"], np.int32), sharding)  # per lane, from the checkpoint
    n_episodes = episodes or cfg.env.test_episodes
    keys = jax.device_put(seed_keys(cfg, 0xE7A1), sharding)
    host = isinstance(env, HostEnvFactory)
    if host:  # simulators in worker processes, crashed episodes re-run
        from jaxfactor.runner.host import HostBackend

        backend = HostBackend(s)
        try:
            stats = backend.evaluate_params(params, t_env, keys, n_episodes)
        finally:
            backend.close()
    else:
        eval_fn = jax.jit(jax.vmap(make_evaluate(algo, env, n_episodes)))
        stats = greedy_summary(jax.device_get(eval_fn(params, keys, t_env)))
    out: dict[str, Any] = {
        "algo": cfg.algo.name,
        "env": cfg.env.name,
        "chunk": meta["chunk"],
        "env_steps": meta["env_steps"],
        "episodes": n_episodes,
        "return": stats["eval/return"].tolist(),
    }
    if env.spec.has_win_flag:
        out["win_rate"] = stats["eval/win_rate"].tolist()
    print(
        f"{cfg.algo.name} on {cfg.env.name}: checkpoint at chunk {meta['chunk']} "
        f"({np.mean(meta['env_steps']):.0f} env steps per seed), {n_episodes} greedy episodes per seed"
    )
    labels = [
        f"{grid_label(p)} seed {s}" if len(cfg.grid) > 1 else f"seed {s}"
        for p in cfg.grid
        for s in range(cfg.num_seeds)
    ]
    for i, label in enumerate(labels):
        line = f"  {label}: return {out['return'][i]:.2f}"
        if "win_rate" in out:
            line += f"  win rate {out['win_rate'][i]:.2f}"
        print(line)
    print(
        f"mean return {np.mean(out['return']):.2f}"
        + (f"  mean win rate {np.mean(out['win_rate']):.2f}" if "win_rate" in out else "")
    )
    if render and host:
        from jaxfactor.render import write_frames_gif
        from jaxfactor.runner.host import record_episode as record_host_episode

        frames, episode = record_host_episode(
            algo,
            env,
            jax.tree.map(lambda x: x[render_seed], params),
            seed_keys(cfg, 0x61F)[render_seed],
            int(meta["env_steps"][render_seed]),
            max_render_steps,
        )
        path = Path(gif) if gif else Path(run_dir) / f"episode_{labels[render_seed].replace(' ', '_')}.gif"
        write_frames_gif(frames, path)
        out["gif"] = str(path)
        print(
            f"wrote {path} ({len(frames)} frames, episode of {episode['length']} steps, return {episode['return']:.2f})"
        )
    elif render:
        from jaxfactor.render import record_episode, write_gif

        episode = jax.jit(lambda p, k, t: record_episode(algo, env, p, k, t))(
            jax.tree.map(lambda x: x[render_seed], params), seed_keys(cfg, 0x61F)[render_seed], t_env[render_seed]
        )
        if max_render_steps is not None:
            episode["length"] = np.minimum(episode["length"], max_render_steps)
        path = Path(gif) if gif else Path(run_dir) / f"episode_{labels[render_seed].replace(' ', '_')}.gif"
        frames = write_gif(cfg.env.kind, env, episode, path)
        out["gif"] = str(path)
        print(f"wrote {path} ({frames} frames, episode of {int(episode['length'])} steps)")
    return out


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        opts = _parse(argv)
        evaluate(
            opts["run_dir"],
            opts["episodes"],
            opts["render"] == "true",
            opts["gif"],
            opts["render_seed"],
            opts["step"],
            opts["max_render_steps"],
        )
    except ConfigError as e:
        print(f"jaxfactor: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
