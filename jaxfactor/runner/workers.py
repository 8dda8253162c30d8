"""Simulator pools for the host collector: one interface, two implementations.

`ProcessPool`: simulators in spawned worker processes (never forked next to JAX), each worker in its own
process group (`setsid`), so killing the group also removes a simulator's own child processes (SC2_x64).
Requests go only to envs whose episode runs and are gathered against a deadline. A worker that dies, hangs
or fails to answer is killed with its group and respawned; a simulator that raises is closed and rebuilt
inside its worker. Either way only the affected episodes are lost (reported as failures); a simulator that
fails `max_consecutive_failures` times in a row stops the run with its traceback (a deterministic bug, an
illegal action, a missing install: restarting cannot help).

`InlinePool`: the same in the trainer's process (no isolation from segfaults or hangs; fast for fakes and
debugging).

This module imports no JAX: it is what a worker runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing as mp
import os
import signal
import time
import traceback
from multiprocessing.connection import wait
from typing import Any

import numpy as np

from jaxfactor.hostenvs import HostEnvFactory
from jaxfactor.hostenvs.protocol import check_timestep


class SimulatorFailed(RuntimeError):
    """A simulator failed repeatedly (or at the very start): the run stops with its traceback."""


@dataclasses.dataclass
class Failure:
    """Why an env's request produced no timestep: its episode is discarded."""

    reason: str
    detail: str = ""


@dataclasses.dataclass
class PoolStats:
    crashes: int = 0  # simulators that raised, died, hung or broke the contract (a dead worker: each it held)
    restarts: int = 0  # worker processes respawned
    invalid_episodes: int = 0  # in-band self-restarts reported by the simulator
    discarded_episodes: int = 0  # episodes dropped for any of the above

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    start_method: str = "spawn"
    start_timeout_s: float = 300.0
    reset_timeout_s: float = 300.0
    step_timeout_s: float = 60.0
    max_consecutive_failures: int = 3


def _run_requests(envs: dict[int, Any], factory: HostEnvFactory, cmd: str, items: list[tuple]) -> dict[int, tuple]:
    """Serve one request for several envs: ('ok', timestep) or ('error', traceback) per env. A simulator that
    raised is closed and rebuilt on its next reset: its state is no longer trusted."""
    out: dict[int, tuple] = {}
    for index, *args in items:
        try:
            if cmd == "reset":
                if index not in envs:
                    envs[index] = factory.make(index)
                ts = envs[index].reset(*args)
            elif cmd == "step":
                ts = envs[index].step(*args)
            else:  # render
                ts = envs[index].render()
            if cmd != "render":
                check_timestep(factory.spec, ts, stepped=cmd == "step")
            out[index] = ("ok", ts)
        except Exception:  # noqa: BLE001  (any simulator error costs this episode only)
            out[index] = ("error", traceback.format_exc())
            env = envs.pop(index, None)
            if env is not None:
                try:
                    env.close()
                except Exception:  # noqa: BLE001
                    pass
    return out


def _worker_main(conn, factory: HostEnvFactory) -> None:
    os.setsid()  # own process group: the parent kills it whole (the simulator's children with it)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle; it closes us
    envs: dict[int, Any] = {}
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                cmd, items = conn.recv()
            except (EOFError, OSError):  # the trainer is gone
                break
            if cmd == "close":
                break
            conn.send(("ok", _run_requests(envs, factory, cmd, items)))
    finally:
        for env in envs.values():
            try:
                env.close()
            except Exception:  # noqa: BLE001
                pass


@contextlib.contextmanager
def _single_threaded_children():
    """A spawned worker inherits this environment: one BLAS/OpenMP thread per simulator, so W workers use W cores
    (multi-threaded numpy in every worker oversubscribes them: highway-env trains 40 instead of 23 env steps/s
    on 2 cores with 2 workers). Variables the user set are kept."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    for n in names:
        os.environ.setdefault(n, "1")
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)


class _Base:
    def __init__(self, factory: HostEnvFactory, num_envs: int, settings: PoolSettings):
        self.factory, self.num_envs, self.settings = factory, num_envs, settings
        self.stats = PoolStats()
        self._failures = np.zeros(num_envs, np.int64)  # consecutive failed episodes per env
        self._ever_reset = np.zeros(num_envs, bool)

    def _judge(self, results: dict[int, Any], cmd: str) -> dict[int, Any]:
        for index, result in results.items():
            if isinstance(result, Failure):
                self.stats.crashes += 1
                self._failures[index] += 1
                fatal = not self._ever_reset[index] and cmd == "reset"
                if fatal or self._failures[index] >= self.settings.max_consecutive_failures:
                    why = "its first reset" if fatal else f"{self._failures[index]} episodes in a row"
                    raise SimulatorFailed(
                        f"simulator {index} ({self.factory.kind}) failed {why}: {result.reason}\n"
                        f"{result.detail}".rstrip()
                    )
            elif cmd == "reset":
                self._ever_reset[index] = True
        return results

    def episode_done(self, index: int, valid: bool, invalid_in_band: bool = False) -> None:
        """Bookkeeping at an episode's end: a valid one clears the failure streak; an in-band restart counts."""
        if invalid_in_band:
            self.stats.invalid_episodes += 1
            self._failures[index] += 1
            if self._failures[index] >= self.settings.max_consecutive_failures:
                raise SimulatorFailed(
                    f"simulator {index} ({self.factory.kind}) restarted itself in "
                    f"{self._failures[index]} episodes in a row"
                )
        if valid:
            self._failures[index] = 0
        else:
            self.stats.discarded_episodes += 1

    def reset(self, seeds: np.ndarray, t_env: np.ndarray, indices: list[int] | None = None) -> dict[int, Any]:
        indices = range(self.num_envs) if indices is None else indices
        items = [(i, int(seeds[i]), int(t_env[i])) for i in indices]
        return self._judge(self._request("reset", items), "reset")

    def step(self, actions: dict[int, np.ndarray]) -> dict[int, Any]:
        return self._judge(self._request("step", [(i, a) for i, a in actions.items()]), "step")

    def render(self, index: int) -> np.ndarray | None:
        result = self._request("render", [(index,)])[index]
        return None if isinstance(result, Failure) else result

    def _request(self, cmd: str, items: list[tuple]) -> dict[int, Any]:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        pass


class InlinePool(_Base):
    """Every simulator in this process."""

    def __init__(self, factory: HostEnvFactory, num_envs: int, settings: PoolSettings = PoolSettings()):
        super().__init__(factory, num_envs, settings)
        self._envs: dict[int, Any] = {}

    def _request(self, cmd: str, items: list[tuple]) -> dict[int, Any]:
        out = _run_requests(self._envs, self.factory, cmd, items)
        return {i: value if status == "ok" else Failure("raised", value) for i, (status, value) in out.items()}

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


class ProcessPool(_Base):
    """`num_workers` processes; env i lives in worker i % num_workers (several envs per worker step in turn)."""

    def __init__(
        self, factory: HostEnvFactory, num_envs: int, num_workers: int, settings: PoolSettings = PoolSettings()
    ):
        super().__init__(factory, num_envs, settings)
        if settings.start_method not in ("spawn", "forkserver"):
            raise ValueError(f"start_method {settings.start_method}: workers next to JAX are spawned, never forked")
        self._ctx = mp.get_context(settings.start_method)
        self.num_workers = min(num_workers, num_envs)
        self._procs: list[Any] = [None] * self.num_workers
        self._conns: list[Any] = [None] * self.num_workers
        try:
            for w in range(self.num_workers):
                self._start(w)
            for w in range(self.num_workers):
                self._await_ready(w)
        except BaseException:
            self.close()
            raise

    def worker_of(self, index: int) -> int:
        return index % self.num_workers

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None]

    def _start(self, w: int) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=_worker_main, args=(child, self.factory), daemon=True, name=f"jaxfactor-sim-{w}"
        )
        with _single_threaded_children():
            proc.start()
        child.close()
        self._procs[w], self._conns[w] = proc, parent

    def _await_ready(self, w: int) -> None:
        conn, limit = self._conns[w], self.settings.start_timeout_s
        try:
            ready = conn.poll(limit) and conn.recv()[0] == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            self._kill(w)
            raise SimulatorFailed(
                f"simulator worker {w} did not start within host.start_timeout_s={limit:g}s "
                f"(exit code {self._procs[w].exitcode if self._procs[w] else None})"
            )

    def _kill(self, w: int) -> None:
        proc, conn = self._procs[w], self._conns[w]
        if proc is not None and proc.pid is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the worker and everything it started
            except (ProcessLookupError, PermissionError):
                pass
            proc.join(timeout=10)
        if conn is not None:
            conn.close()
        self._procs[w] = self._conns[w] = None

    def _restart(self, w: int) -> None:
        self._kill(w)
        self.stats.restarts += 1
        self._start(w)
        self._await_ready(w)

    def _request(self, cmd: str, items: list[tuple]) -> dict[int, Any]:
        by_worker: dict[int, list[tuple]] = {}
        for item in items:
            by_worker.setdefault(self.worker_of(item[0]), []).append(item)
        per_item = self.settings.reset_timeout_s if cmd == "reset" else self.settings.step_timeout_s
        out: dict[int, Any] = {}
        failed: dict[int, Failure] = {}
        pending: dict[Any, int] = {}
        for w, batch in by_worker.items():
            try:
                self._conns[w].send((cmd, batch))
                pending[self._conns[w]] = w
            except (BrokenPipeError, ConnectionResetError, OSError) as e:
                failed[w] = Failure("died", f"{type(e).__name__} sending '{cmd}' to worker {w}")
        deadline = time.monotonic() + per_item * max((len(b) for b in by_worker.values()), default=1)
        while pending:
            ready = wait(list(pending), timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            for conn in ready:
                w = pending.pop(conn)
                try:
                    status, replies = conn.recv()
                except (EOFError, OSError) as e:
                    code = self._procs[w].exitcode if self._procs[w] else None
                    failed[w] = Failure("died", f"worker {w} died ({type(e).__name__}, exit code {code})")
                    continue
                for index, (s, value) in replies.items():
                    out[index] = value if s == "ok" else Failure("raised", value)
        for w in pending.values():
            failed[w] = Failure(
                "hung",
                f"worker {w} gave no answer to '{cmd}' within {per_item:g}s per env "
                f"(host.{'reset' if cmd == 'reset' else 'step'}_timeout_s)",
            )
        for w, failure in failed.items():
            for item in by_worker[w]:
                out[item[0]] = failure
            self._restart(w)  # every env of that worker starts afresh: their episodes are lost too
        return out

    def close(self) -> None:
        for conn in self._conns:
            if conn is not None:
                try:
                    conn.send(("close", None))
                except (BrokenPipeError, OSError):
                    pass
        for w, proc in enumerate(self._procs):
            if proc is not None:
                proc.join(timeout=5)
            self._kill(w)
