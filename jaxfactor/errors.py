"""One error type for bad user input, so the CLI can print it as a single line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path


class ConfigError(ValueError):
    """A user-facing configuration or input error; the message names the field and the allowed values."""


class OneLineParser(argparse.ArgumentParser):
    """argparse for the small tools (plot, summarise): a bad argument is a ConfigError, not usage text."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message}; see {self.prog} --help")


def exit_on_config_error(tool: Callable[[], None]) -> None:
    """Run a command-line tool; a ConfigError is its one `jaxfactor: error:` line and exit code 2."""
    try:
        tool()
    except ConfigError as e:
        print(f"jaxfactor: error: {e}", file=sys.stderr)
        sys.exit(2)


def check_output_path(field: str, path: str | Path, suffixes: tuple[str, ...]) -> Path:
    """An output file the user named: a known extension and a directory that exists (or can be made) and is
    writable, checked before any work is done."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{field}={path} has an unknown extension '{path.suffix}'; allowed: {', '.join(suffixes)}")
    if path.is_dir():
        raise ConfigError(f"{field}={path} is a directory; allowed: a file path ending in {', '.join(suffixes)}")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent  # the nearest existing ancestor must let us create the rest
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{field}={path} cannot be written ({parent} is not a writable directory); "
            "allowed: a path in a writable directory"
        )
    return path
