"""`python -m jaxfactor.summarise <dir> [<dir> ...] [--out table.md|table.csv]`

One results table across runs: every run under the given directories (the job folders of a multirun, whichever
launcher ran them, or single runs), a row per run and per grid point of a sweep: what the job's command line
set, algorithm, env, seeds, env steps per seed, the final greedy return over seeds (mean, IQM, min, max), the win
rate where the env has one, and diverged seeds. A job without summary.json (still running, failed, timed out) is
a row that says so, never left out.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from jaxfactor.errors import ConfigError, OneLineParser, check_output_path, exit_on_config_error

COLUMNS = (
    "run",
    "overrides",
    "algo",
    "env",
    "seeds",
    "env_steps",
    "return_mean",
    "return_iqm",
    "return_min",
    "return_max",
    "win_rate_mean",
    "diverged",
    "status",
)
HIDDEN_OVERRIDES = ("run_dir=", "progress=", "resume=")


def find_runs(dirs: list[str]) -> list[Path]:
    """Run directories (holding config.json) at or below `dirs`, in a stable order (job2 before job10)."""

    def order(p: Path):
        return [int(part) if part.isdigit() else part for piece in p.parts for part in _split_digits(piece)]

    runs: list[Path] = []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise ConfigError(f"{d} is not a directory; allowed: run or multirun directories")
        found = sorted({c.parent for c in d.rglob("config.json") if "checkpoints" not in c.parts}, key=order)
        if not found:
            raise ConfigError(f"{d} holds no run (no config.json at or below it)")
        runs += found
    return runs


def _split_digits(text: str) -> list[str]:
    out, current = [], ""
    for ch in text:
        if current and ch.isdigit() != current[-1].isdigit():
            out.append(current)
            current = ""
        current += ch
    return out + [current] if current else out


def _stats(returns: list[float | None], wins: list[float | None] | None, diverged: list[bool]) -> dict[str, Any]:
    from jaxfactor.runner.report import aggregate

    ok = [r for r in returns if r is not None]
    row: dict[str, Any] = {"diverged": sum(diverged)}
    if ok:
        agg = aggregate(np.asarray(ok))
        row.update(return_mean=agg["mean"], return_iqm=agg["iqm"], return_min=agg["min"], return_max=agg["max"])
    if wins is not None and any(w is not None for w in wins):
        row["win_rate_mean"] = float(np.mean([w for w in wins if w is not None]))
    return row


def rows(run_dirs: list[Path]) -> list[dict[str, Any]]:
    """A row per run (per grid point of a sweep) with the COLUMNS that apply."""
    from jaxfactor.runner.lanes import grid_label

    root = Path(*_common_parts(run_dirs))
    out = []
    for run in run_dirs:
        config = json.loads((run / "config.json").read_text())
        saved = run / "overrides.json"
        overrides = json.loads(saved.read_text()) if saved.exists() else []
        base = {
            "run": str(run.relative_to(root)) if run != root else run.name,
            "overrides": " ".join(o for o in overrides if not o.startswith(HIDDEN_OVERRIDES)),
            "algo": config["algo"]["name"],
            "env": config["env"]["name"],
            "seeds": config["num_seeds"],
        }
        summary_file = run / "summary.json"
        if not summary_file.exists():
            out.append({**base, "status": "no summary.json (running, failed or stopped)"})
            continue
        s = json.loads(summary_file.read_text())
        base.update(env_steps=s["env_steps"], status="finished")
        final, S = s["final"], s["num_seeds"]
        if "grid" not in s:
            out.append({**base, **_stats(final["eval_return"], final.get("eval_win_rate"), final["diverged"])})
            continue
        for g, point in enumerate(s["grid"]):
            lanes = slice(g * S, (g + 1) * S)
            wins = final.get("eval_win_rate")
            out.append(
                {
                    **base,
                    "overrides": f"{base['overrides']} [{grid_label(point['point'])}]".strip(),
                    **_stats(final["eval_return"][lanes], wins[lanes] if wins else None, final["diverged"][lanes]),
                }
            )
    known = [set(r["overrides"].split()) for r in out if r["overrides"]]
    shared = set.intersection(*known) if len(known) > 1 else set()
    for r in out:  # what tells the jobs apart; what they all set is the multirun's, not a row's
        r["overrides"] = " ".join(o for o in r["overrides"].split() if o not in shared)
    return out


def _common_parts(paths: list[Path]) -> tuple[str, ...]:
    parts = [p.resolve().parts for p in paths]
    common = []
    for level in zip(*parts):
        if len(set(level)) > 1:
            break
        common.append(level[0])
    if len(paths) == 1:
        common = common[:-1]
    return tuple(common) or ("/",)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def markdown(table: list[dict[str, Any]]) -> str:
    columns = [c for c in COLUMNS if any(c in r for r in table)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_text(r.get(c)) for c in columns) + " |" for r in table]
    return "\n".join(lines)


def csv_text(table: list[dict[str, Any]]) -> str:
    columns = [c for c in COLUMNS if any(c in r for r in table)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = OneLineParser(prog="python -m jaxfactor.summarise", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="multirun or run directories")
    parser.add_argument("--out", help="also write the table: .md (Markdown) or .csv")

    def tool() -> None:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        if args.out:
            check_output_path("--out", args.out, (".md", ".csv"))
        table = rows(find_runs(args.dirs))
        print(markdown(table))
        if args.out:
            Path(args.out).write_text(csv_text(table) if args.out.endswith(".csv") else markdown(table) + "\n")
            print(f"wrote {args.out}")

    exit_on_config_error(tool)


if __name__ == "__main__":
    main()
