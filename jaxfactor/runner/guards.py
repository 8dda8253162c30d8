"""What guards a run: one process per run_dir, and SIGINT/SIGTERM turned into a clean stop at a chunk boundary."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from jaxfactor.errors import ConfigError


class RunInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped the run; `exit_code` is 130 or 143 (128 + the signal)."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code, self.message = 128 + signum, message


class StopOnSignal:
    """While active, the first SIGINT/SIGTERM asks the loop to stop at the end of the running chunk (it then
    checkpoints, waits for every write and raises RunInterrupted); a second one ends the process at once."""

    def __enter__(self) -> StopOnSignal:
        self.signum: int | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():  # Python delivers signals to the main thread
            self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.signum is not None:  # at once: a write in flight stays a temporary directory that nothing reads
            print(
                f"jaxfactor: {name} again: abandoned the run; resume= continues from its last complete checkpoint",
                file=sys.stderr,
                flush=True,
            )
            os._exit(128 + signum)
        self.signum = signum
        print(
            f"jaxfactor: {name}: stopping after the running chunk and its checkpoint ({name} again abandons them)",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class RunDirLock:
    """One process at a time per run_dir (two runs started in the same second share the default name):
    <run_dir>/.lock holds the owner's pid; a lock whose process is gone (a killed run) is taken over."""

    def __init__(self, run_dir: Path):
        self.run_dir, self.path = run_dir, run_dir / ".lock"

    def __enter__(self) -> RunDirLock:
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise ConfigError(
                        f"run_dir={self.run_dir} is in use by another run (pid {owner}); allowed: another run_dir"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip())
        except (OSError, ValueError):
            return None

    def __exit__(self, *exc: Any) -> None:
        if self._owner() == os.getpid():
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
