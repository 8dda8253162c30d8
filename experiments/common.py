"""Shared helpers of the experiment scripts."""

from __future__ import annotations

from pathlib import Path

from jaxfactor.cli import load_config
from jaxfactor.config import RunConfig

RESULTS = Path(__file__).resolve().parent / "results"


def save_table(name: str, table: str) -> Path:
    """Print a markdown table and save it to experiments/results/<name>.md (git-ignored)."""
    print("\n" + table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(table + "\n")
    return path


def make_cfg(*overrides: str, run_dir: str = "runs/experiments/scratch") -> RunConfig:
    """Compose configs/ exactly like the CLI (no progress bar)."""
    return load_config(overrides, run_dir=run_dir, progress="false")
