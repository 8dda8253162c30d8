"""How the golden test reads a run's final parameters (kept apart: the restore API is what the refactor changes)."""

from __future__ import annotations

from pathlib import Path


def restore_params(cfg, run_dir: Path):
    from jaxfactor.checkpoint import Checkpointer
    from jaxfactor.runner.lanes import abstract_lanes, setup

    s = setup(cfg)
    ckpt = Checkpointer(run_dir, cfg.checkpoint.max_to_keep, cfg.checkpoint.buffer)
    params, _ = ckpt.restore_params(abstract_lanes(cfg, s.algo, s.sharding).learner.params)
    ckpt.close()
    return params
