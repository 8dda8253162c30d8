"""One program over several processes (`jax.distributed`): starting it from the config or the cluster's
environment, and the few host-side operations that must see every process's lanes.

The lane axis is sharded over every process's devices; each process computes only its own lanes. What the run
loop reads on the host (metrics, env-step counters, evaluation results) is gathered from every process, so every
process takes the same decisions; process 0 alone writes metrics, summaries, W&B and the console. Checkpoints
are written by all processes together through orbax (each its own shards).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from jaxfactor.config import DistributedConfig
from jaxfactor.errors import ConfigError


def declared_processes() -> int:
    """How many processes the cluster's environment declares for this job step (the environments JAX's own
    detection reads: SLURM's srun, Open MPI's mpirun); 1 outside them."""
    if all(v in os.environ for v in ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID")):
        return int(os.environ["SLURM_NTASKS"])
    if "OMPI_MCA_orte_hnp_uri" in os.environ and "OMPI_COMM_WORLD_SIZE" in os.environ:
        return int(os.environ["OMPI_COMM_WORLD_SIZE"])
    return 1


def initialize(d: DistributedConfig) -> None:
    """`jax.distributed.initialize` when the run is several processes (explicit keys, or detected); before any
    JAX computation. A second call in the same process does nothing."""
    import jax

    if jax.distributed.is_initialized():
        return
    explicit = d.num_processes is not None
    if (explicit and d.num_processes == 1) or (not explicit and declared_processes() <= 1):
        return
    if explicit:  # JAX's client aborts the process (no exception) when the coordinator cannot be reached
        _check_coordinator(d)
    # CPU devices of different processes talk through gloo (process_allgather, orbax's barriers need it).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=d.coordinator_address,
            num_processes=d.num_processes,
            process_id=d.process_id,
            initialization_timeout=d.initialization_timeout_s,
        )
    except Exception as e:  # unreachable coordinator, a process that never joined, JAX already in use
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        where = (
            f"coordinator {d.coordinator_address}, process {d.process_id} of {d.num_processes}"
            if explicit
            else f"{declared_processes()} processes declared by the cluster's environment"
        )
        raise ConfigError(
            f"distributed: jax.distributed.initialize failed ({where}): {first}; allowed: every "
            "process started with the same distributed.coordinator_address and num_processes "
            "within distributed.initialization_timeout_s"
        ) from None


def _check_coordinator(d: DistributedConfig) -> None:
    """Process 0 can bind the coordinator's port; every other process reaches it within the timeout."""
    import socket
    import time

    host, port = d.coordinator_address.rsplit(":", 1)
    if d.process_id == 0:
        try:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
                s.bind(("", int(port)))
        except OSError as e:
            raise ConfigError(
                f"distributed.coordinator_address={d.coordinator_address}: process 0 cannot serve on "
                f"port {port} ({e.strerror}); allowed: a free port on process 0's host"
            ) from None
        return
    deadline = time.monotonic() + d.initialization_timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"distributed.coordinator_address={d.coordinator_address} was not reachable from "
                    f"process {d.process_id} within distributed.initialization_timeout_s="
                    f"{d.initialization_timeout_s}; allowed: the host:port where process 0 runs, "
                    "started within the timeout"
                ) from None
            time.sleep(0.5)


def is_key(x: Any) -> bool:
    """A typed PRNG key array, or the abstract (ShapeDtypeStruct) description of one."""
    import jax

    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def process_count() -> int:
    import jax

    return jax.process_count()


def is_primary() -> bool:
    """Process 0: the one that writes outputs and the console."""
    import jax

    return jax.process_index() == 0


def say(*args: Any, file: Any = None, **kwargs: Any) -> None:
    """print, on process 0 only."""
    if is_primary():
        print(*args, file=file or sys.stdout, **kwargs)


def gather(tree: Any) -> Any:
    """Device pytree -> numpy pytree of the global values, also of arrays whose shards live in other processes
    (every process must call it, in the same order)."""
    import jax

    if process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def leaf(x: Any) -> Any:
        if getattr(x, "is_fully_addressable", True):
            return np.asarray(jax.device_get(x))
        return multihost_utils.process_allgather(x, tiled=True)

    return jax.tree.map(leaf, tree)


def put(tree: Any, sharding: Any) -> Any:
    """Host values (the same in every process) -> global arrays laid out by `sharding`; typed PRNG keys too."""
    import jax

    if process_count() == 1:
        return jax.device_put(tree, sharding)

    def leaf(x: Any) -> Any:
        if is_key(x):
            return jax.random.wrap_key_data(jax.device_put(np.asarray(jax.random.key_data(x)), sharding))
        return jax.device_put(np.asarray(x), sharding)

    return jax.tree.map(leaf, tree)


def any_process(flag: bool) -> bool:
    """True when `flag` is true in any process (a signal received by one process stops them all together)."""
    if process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


def barrier(name: str) -> None:
    """Every process waits here until all have arrived (e.g. after process 0 renamed files the others read)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def local(tree: Any) -> Any:
    """Arrays sharded along the lane axis -> this process's lanes (one contiguous block) as host arrays, typed
    keys kept typed: what host simulators of this process act on. One process: `tree` as it is."""
    if process_count() == 1:
        return tree
    import jax

    def leaf(x: Any) -> Any:
        data = jax.random.key_data(x) if is_key(x) else x
        shards = {s.index[0].start or 0: s for s in data.addressable_shards}
        block = np.concatenate([np.asarray(shards[start].data) for start in sorted(shards)])
        return jax.random.wrap_key_data(block) if is_key(x) else block

    return jax.tree.map(leaf, tree)


def from_local(tree: Any, sharding: Any) -> Any:
    """This process's lanes (host arrays [local lanes, ...]) -> global arrays laid out by `sharding`. One process:
    `tree` as it is."""
    if process_count() == 1:
        return tree
    import jax

    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def gather_local(tree: Any) -> Any:
    """Every process's block of host values [local lanes, ...] -> the values of every lane, in lane order."""
    if process_count() == 1:
        return tree
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(tree, tiled=True)
