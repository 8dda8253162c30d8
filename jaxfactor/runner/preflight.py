"""Everything a run checks before it allocates: env and algorithm keys, devices, replay and state memory,
run_dir and resume compatibility (one-line `ConfigError`s)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jaxfactor import config as config_lib
from jaxfactor.config import RunConfig
from jaxfactor.errors import ConfigError
from jaxfactor.runner.lanes import Setup, local_lanes, setup
from jaxfactor.runner.multihost import process_count


def preflight(cfg: RunConfig) -> None:
    """Every check that can fail before allocation: env/algo keys, devices, replay memory, run_dir, resume
    compatibility."""
    check_memory(setup(cfg))
    check_run_dir(cfg)


def check_memory(s: Setup) -> None:
    """Replay and the whole training state must fit this process's share of free memory."""
    from jaxfactor import buffers

    cfg = s.cfg
    buffers.check_memory(
        s.env.spec,
        cfg.algo.buffer_size,
        local_lanes(cfg),
        cfg.max_buffer_memory_fraction,
        config_lib.segment_length(cfg),
    )
    check_state_memory(s)


def check_state_memory(s: Setup) -> None:
    """The whole training state (parameters, targets, optimiser moments, replay) from its abstract shapes, this
    process's share of it: networks too large for the device are refused before anything is allocated."""
    import jax

    from jaxfactor import buffers
    from jaxfactor.runner.lanes import abstract_lanes

    state = abstract_lanes(s.cfg, s.algo)
    learner = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.learner))
    total = learner + sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.buffer))
    learner, total = learner // process_count(), total // process_count()
    free, fraction = buffers.available_memory_bytes(), s.cfg.max_buffer_memory_fraction
    if total > fraction * free:
        raise ConfigError(
            f"the training state needs {total / 2**30:.2f} GiB ({learner / 2**30:.2f} GiB of parameters, "
            f"targets and optimiser state for {local_lanes(s.cfg)} lanes), more than "
            f"max_buffer_memory_fraction={fraction} of the {free / 2**30:.2f} GiB free; lower "
            "algo.agent_hidden_dim, algo.mixing_embed_dim, algo.hypernet_embed_dim or num_seeds"
        )


def check_run_dir(cfg: RunConfig) -> None:
    """A fresh run never writes over another run's checkpoints; a resume must match its checkpoint."""
    if Path(cfg.run_dir).exists() and not Path(cfg.run_dir).is_dir():
        raise ConfigError(f"run_dir={cfg.run_dir} is a file; allowed: a directory (new or a run's own)")
    if cfg.resume is not None:
        _check_resume(cfg)
    elif any((Path(cfg.run_dir) / "checkpoints").glob("[0-9]*")):
        raise ConfigError(
            f"run_dir={cfg.run_dir} already holds a run with checkpoints; allowed: resume={cfg.run_dir} "
            "to continue it, or another run_dir"
        )


def _check_resume(cfg: RunConfig) -> None:
    """The latest checkpoint's own config must match, up to what a resume may change."""
    from jaxfactor.checkpoint import Checkpointer, check_compatible

    if Path(cfg.run_dir).resolve() != Path(cfg.resume).resolve():
        raise ConfigError(
            f"resume={cfg.resume} continues that run in place; run_dir={cfg.run_dir} must be the same "
            "directory (leave run_dir unset)"
        )
    if not (Path(cfg.resume) / "checkpoints").is_dir():
        raise ConfigError(f"resume={cfg.resume} is not a run directory with checkpoints (no checkpoints/ there)")
    ckpt = Checkpointer(cfg.resume, cfg.checkpoint.max_to_keep, cfg.checkpoint.buffer)
    try:
        step, meta = ckpt.read_meta(cfg.resume_step)
    except ConfigError as e:
        raise ConfigError(f"resume={cfg.resume}: {e}") from None
    finally:
        ckpt.close()
    check_compatible(meta["config"], plain(cfg), f"{ckpt.directory}/{step}")
    saved = meta.get("processes", 1)
    if saved != process_count():
        raise ConfigError(
            f"resume={cfg.resume}: checkpoint {step} was written by {saved} process(es), this run has "
            f"{process_count()}; allowed: resume with distributed.num_processes={saved} (its lanes "
            "are laid out over that many processes)"
        )


def plain(cfg: RunConfig) -> dict[str, Any]:
    return json.loads(json.dumps(config_lib.to_dict(cfg)))
