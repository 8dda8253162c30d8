"""Shared helpers of the experiment scripts."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def save_table(name: str, table: str) -> Path:
    """Print a markdown table and save it to experiments/results/<name>.md (git-ignored)."""
    print("\n" + table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(table + "\n")
    return path
