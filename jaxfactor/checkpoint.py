"""Exact checkpoints of the whole runner state with orbax, plus the metadata a resume needs.

A checkpoint is the seed-batched `RunnerState` (parameters, target parameters, optimiser states,
hyperparameter leaves, running statistics, replay buffers unless `checkpoint.buffer=false`, RNG keys,
counters) and a JSON record (format, versions, resolved config, chunk index, host counters, W&B run id).
Environments hold no state between updates (every update collects whole episodes from resets), so
there is no env state to save. Steps are chunk indices: the host loop saves at chunk boundaries only.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax

import jaxfactor
from jaxfactor.errors import ConfigError
from jaxfactor.runner.multihost import barrier, is_key, is_primary, say

FORMAT = 2
"""Bumped whenever the saved tree changes; a checkpoint of another format is refused (2: counters moved from
the runner into the learner state)."""

RESUMABLE_CHANGES = (
    "total_timesteps",
    "progress",
    "run_dir",
    "resume",
    "resume_step",
    "max_buffer_memory_fraction",
    "num_devices",
    "logger",
    "checkpoint",
    "host",
    "distributed",
)
"""Top-level keys (or sections) a resume may change; everything else must match the checkpoint."""


def to_host(tree: Any) -> Any:
    """Device pytree -> numpy pytree (typed PRNG keys as their raw uint32 data)."""
    return jax.device_get(jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree))


def _saveable(tree: Any) -> Any:
    """What orbax writes: host copies in one process (the runner's device buffers are donated to the next chunk);
    the global arrays with several, each process writing its own shards (orbax copies them to host before
    `save` returns)."""
    if jax.process_count() == 1:
        return to_host(tree)
    return jax.tree.map(lambda x: jax.random.key_data(x) if is_key(x) else x, tree)


def key_data_target(abstract: Any) -> Any:
    """A restore target: typed-key leaves of an abstract (ShapeDtypeStruct) tree as their raw uint32 data."""

    def leaf(x):
        if is_key(x):
            data = jax.eval_shape(jax.random.key_data, x)
            return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=x.sharding)
        return x

    return jax.tree.map(leaf, abstract)


def wrap_keys(restored: Any, abstract: Any) -> Any:
    """Inverse of `key_data_target` on restored arrays (jaxfactor's keys use the default implementation)."""
    return jax.tree.map(lambda x, a: jax.random.wrap_key_data(x) if is_key(a) else x, restored, abstract)


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_compatible(saved: Mapping[str, Any], current: Mapping[str, Any], source: str) -> None:
    """Refuse to resume a checkpoint under a config that changes anything but RESUMABLE_CHANGES."""
    a, b = _flatten(saved), _flatten(current)
    differ = [
        k
        for k in sorted(set(a) | set(b))
        if k.split(".")[0] not in RESUMABLE_CHANGES and a.get(k, "<absent>") != b.get(k, "<absent>")
    ]
    if differ:
        shown = "; ".join(f"{k}: checkpoint {a.get(k, '<absent>')!r}, now {b.get(k, '<absent>')!r}" for k in differ[:4])
        more = f" (and {len(differ) - 4} more)" if len(differ) > 4 else ""
        raise ConfigError(
            f"resume: the config differs from the checkpoint's in {source}: {shown}{more}; "
            f"allowed to change on resume: {', '.join(RESUMABLE_CHANGES)}"
        )


def _from_a_failed_read(unraisable: Any) -> bool:
    """Left behind by a failed orbax read: tensorstore callbacks into orbax's closed event loop."""
    if isinstance(unraisable.exc_value, RuntimeError) and "Event loop is closed" in str(unraisable.exc_value):
        return True
    frames = traceback.extract_tb(unraisable.exc_traceback) if unraisable.exc_traceback else []
    return any("orbax" in f.filename or "tensorstore" in f.filename for f in frames)


def _quiet_failed_reads() -> None:
    """A failed read's stragglers print thousands of traceback lines that say nothing the one-line notice does
    not; drop them (and asyncio's "Task exception was never retrieved") for the rest of the process."""
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    previous = sys.unraisablehook
    if getattr(previous, "jaxfactor_quiet", False):
        return

    def hook(unraisable: Any) -> None:
        if not _from_a_failed_read(unraisable):
            previous(unraisable)

    hook.jaxfactor_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


class Checkpointer:
    """orbax CheckpointManager over <run_dir>/checkpoints, one step per saved chunk."""

    def __init__(self, run_dir: str | Path, max_to_keep: int, include_buffer: bool):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(run_dir).resolve() / "checkpoints"
        self.include_buffer = include_buffer
        self._last_saved: int | None = None
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_names=("state", "meta"),
        )

    def _tree(self, runner: Any) -> dict[str, Any]:
        fields = {f.name: getattr(runner, f.name) for f in dataclasses.fields(runner)}
        if not self.include_buffer:
            fields.pop("buffer")
        return fields

    def save(self, step: int, runner: Any, meta: dict[str, Any]) -> bool:
        """Saves (host copies first: the runner's device buffers are donated to the next chunk); False when the
        step is saved already."""
        if step in self.manager.all_steps() or step == self._last_saved:  # the latter may still be writing
            return False
        self._last_saved = step
        ocp = self._ocp
        meta = {
            **meta,
            "format": FORMAT,
            "jaxfactor_version": jaxfactor.__version__,
            "jax_version": jax.__version__,
            "has_buffer": self.include_buffer,
            "processes": jax.process_count(),
        }
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(_saveable(self._tree(runner))), meta=ocp.args.JsonSave(meta)
            ),
        )
        return True

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def _meta(self, step: int) -> dict[str, Any]:
        meta = self.manager.restore(step, args=self._ocp.args.Composite(meta=self._ocp.args.JsonRestore()))["meta"]
        if meta.get("format") != FORMAT:
            raise ConfigError(
                f"checkpoint format {meta.get('format')} in {self.directory} is not "
                f"this version's ({FORMAT}); allowed: checkpoints written by jaxfactor "
                f"{jaxfactor.__version__}"
            )
        return meta

    def _newest_readable(
        self, step: int | None, read: Callable[[int, dict], Any], set_aside: bool = False
    ) -> tuple[int, Any, dict]:
        """(step, read(step, meta), meta) of `step`, or of the newest checkpoint that reads: a damaged newer one is
        passed over with a one-line notice (and, with `set_aside`, renamed to <step>.unreadable so that the
        continuing run saves that step again)."""
        steps = sorted(self.manager.all_steps(), reverse=True)
        if not steps:
            raise ConfigError(f"no checkpoint under {self.directory}")
        if step is not None:
            if step not in steps:
                raise ConfigError(
                    f"step={step} is not a checkpoint under {self.directory}; allowed: "
                    f"{', '.join(map(str, sorted(steps)))}"
                )
            steps = [step]
        damaged = []
        _quiet_failed_reads()  # installed before reading: a failed read's stragglers start before it raises
        for s in steps:
            try:
                meta = self._meta(s)
                value = read(s, meta)
            except ConfigError:
                raise
            except Exception as e:  # unreadable files: try the previous checkpoint
                first = (str(e).strip().splitlines() or [""])[0][:120]
                damaged.append(f"{s} ({type(e).__name__}: {first})")
                continue
            if damaged:
                aside = ""
                if set_aside:
                    self._rename_aside(steps[: steps.index(s)], "unreadable")
                    aside = " (renamed to <step>.unreadable)"
                say(
                    f"jaxfactor: checkpoint(s) {', '.join(damaged)} under {self.directory} could not be read"
                    f"{aside}; using checkpoint {s}",
                    file=sys.stderr,
                    flush=True,
                )
            return s, value, meta
        raise ConfigError(f"no readable checkpoint under {self.directory}: {'; '.join(damaged)}")

    def _rename_aside(self, steps: list[int], reason: str) -> None:
        """<step> -> <step>.<reason> (orbax lists integer names only), never over an earlier one; by process 0,
        while the others wait."""
        if is_primary():
            for s in steps:
                target = self.directory / f"{s}.{reason}"
                while target.exists():
                    target = target.with_name(target.name + "+")
                (self.directory / str(s)).rename(target)
        barrier(f"jaxfactor-checkpoint-{reason}-{'-'.join(map(str, steps))}")
        self.manager.reload()

    def set_aside_after(self, step: int) -> None:
        """Rename the checkpoints newer than `step` to <step>.superseded (a resume from an older one), with a
        one-line notice."""
        newer = sorted(s for s in self.manager.all_steps() if s > step)
        if newer:
            self._rename_aside(newer, "superseded")
            say(
                f"jaxfactor: resuming from checkpoint {step}; the newer checkpoint(s) {', '.join(map(str, newer))} "
                f"under {self.directory} were renamed to <step>.superseded",
                file=sys.stderr,
                flush=True,
            )

    def read_meta(self, step: int | None = None) -> tuple[int, dict[str, Any]]:
        """(step, meta) of `step` (default: the newest readable), checked for this version's format."""
        step, _, meta = self._newest_readable(step, lambda s, meta: None)
        return step, meta

    def restore(self, abstract: Any, step: int | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """({field: restored subtree}, meta) of `step` (default: the newest readable), read straight into arrays
        of the shapes, dtypes and shardings of `abstract` (a ShapeDtypeStruct runner tree, e.g. `abstract_lanes`):
        nothing is allocated twice. Without saved buffers the "buffer" field is absent."""
        ocp = self._ocp
        fields = {f.name: getattr(abstract, f.name) for f in dataclasses.fields(abstract)}

        def read(s: int, meta: dict) -> dict[str, Any]:
            target = {k: v for k, v in fields.items() if k != "buffer" or meta["has_buffer"]}
            args = ocp.args.Composite(state=ocp.args.StandardRestore(key_data_target(target)))
            return wrap_keys(self.manager.restore(s, args=args)["state"], target)

        _, restored, meta = self._newest_readable(step, read, set_aside=True)
        return restored, meta

    def restore_params(self, abstract_params: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """(learner parameters, meta) only: the rest of the saved state (replay above all) is never read."""
        ocp = self._ocp
        item = {"learner": {"params": abstract_params}}

        def read(s: int, meta: dict) -> Any:
            args = ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item), partial_restore=True
                )
            )
            return self.manager.restore(s, args=args)["state"]["learner"]["params"]

        _, params, meta = self._newest_readable(step, read)
        return params, meta

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
