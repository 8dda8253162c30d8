"""How the golden test reads a run's final parameters (kept apart: the restore API is what the refactor changes)."""

from __future__ import annotations

from pathlib import Path


def restore_params(cfg, run_dir: Path):
    from jaxfactor.checkpoint import Checkpointer
    from jaxfactor.train import build, initial_runner, seed_sharding

    env, algo, _ = build(cfg)
    ckpt = Checkpointer(run_dir, cfg.checkpoint.max_to_keep, cfg.checkpoint.buffer)
    state, _ = ckpt.restore(initial_runner(cfg, env, algo, seed_sharding(cfg)))
    ckpt.close()
    return state.learner.params
