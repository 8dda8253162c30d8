"""Host-side run logging: metrics.jsonl always, optionally a W&B run (never from inside jit).

Every chunk record holds the aggregates across seeds (mean, IQM, min, max) and the per-seed values;
with a sweep grid, aggregates per grid point as well. W&B gets `<metric>/mean` and `<metric>/iqm`
(per grid point under `grid/<label>/` when there is a grid), optionally `seed<i>/<metric>`, and
compile time and throughput under `perf/`. The step axis is env steps per seed.
"""

from __future__ import annotations

import json
import netrc
import os
import sys
from pathlib import Path
from typing import Any

from jaxfactor.config import RunConfig, to_dict
from jaxfactor.errors import ConfigError


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl. A last line cut short (the process died while writing it) is dropped with
    a one-line notice; damage anywhere else is a one-line error."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise ConfigError(f"{path} line {i + 1} is not a JSON record; the file is damaged") from None
            print(f"jaxfactor: {path}: dropping its last line, cut short ({len(line)} characters)", file=sys.stderr)
    return records


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's config.json as a dict; a missing or damaged file is a one-line error."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"run_dir={run_dir} is not a run directory (no config.json there)")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is damaged ({e}); allowed: the config.json a run wrote") from None
    if not isinstance(config, dict) or not {"algo", "env"} <= config.keys():
        raise ConfigError(f"{path} is not a run's config (no algo and env sections)")
    return config


def _has_wandb_login() -> bool:
    """An API key in the environment or a netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
    try:
        path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class RunLogger:
    """metrics.jsonl (+ W&B). `run_id` is kept in checkpoints so a resume continues the same W&B run."""

    def __init__(self, cfg: RunConfig, run_dir: Path, resume_chunk: int | None = None, wandb_run_id: str | None = None):
        self.cfg, self.run_dir = cfg, run_dir
        path = run_dir / "metrics.jsonl"
        kept = (
            [r for r in read_metrics(path) if r["chunk"] <= resume_chunk]
            if resume_chunk is not None and path.exists()
            else []
        )
        self.file = path.open("w")
        for record in kept:  # a resume drops what was logged after the checkpoint and logs it again
            self.file.write(json.dumps(record) + "\n")
        self.run = self._start_wandb(wandb_run_id) if cfg.logger.kind == "wandb" else None

    @property
    def run_id(self) -> str | None:
        return None if self.run is None else self.run.id

    def _start_wandb(self, run_id: str | None):
        import wandb

        lg = self.cfg.logger
        mode = lg.mode
        if mode == "online" and not _has_wandb_login():
            print(
                "jaxfactor: W&B: no login found (set WANDB_API_KEY or run `wandb login`); logging offline "
                f"under {self.run_dir}/wandb (upload later with `wandb sync`)",
                file=sys.stderr,
            )
            mode = "offline"
        kwargs = dict(
            project=lg.project,
            entity=lg.entity,
            group=lg.group,
            tags=list(lg.tags) or None,
            config=to_dict(self.cfg),
            dir=str(self.run_dir),
            id=run_id,
            resume="allow" if run_id else None,
            name=f"{self.cfg.algo.name}-{self.cfg.env.name}-{self.run_dir.name}",
        )
        settings = wandb.Settings(init_timeout=60, console="off", quiet=True)
        try:
            return wandb.init(mode=mode, settings=settings, **kwargs)
        except Exception as e:  # unreachable server, bad entity, ...: never hang or kill the run
            if mode != "online":
                raise
            print(
                f"jaxfactor: W&B online start failed ({str(e).splitlines()[0][:200]}); logging offline "
                f"under {self.run_dir}/wandb",
                file=sys.stderr,
            )
            return wandb.init(mode="offline", settings=settings, **kwargs)

    def log(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.run is None:
            return
        flat = {k: v for k, v in record.items() if k.startswith("perf/")}
        for name, agg in record["aggregate"].items():
            flat[f"{name}/mean"], flat[f"{name}/iqm"] = agg["mean"], agg["iqm"]
        for label, aggs in record.get("grid", {}).items():
            for name, agg in aggs.items():
                flat[f"grid/{label}/{name}/mean"], flat[f"grid/{label}/{name}/iqm"] = agg["mean"], agg["iqm"]
        if self.cfg.logger.per_seed:
            for name, values in record["per_seed"].items():
                flat.update({f"seed{i}/{name}": v for i, v in enumerate(values)})
        self.run.log(flat, step=int(record["env_steps"]))

    def log_summary(self, summary: dict[str, Any]) -> None:
        if self.run is None:
            return
        self.run.summary.update(
            {
                "perf/compile_s": summary["compile_s"],
                "perf/steps_per_s": summary["steps_per_s"],
                "final/eval_return_mean": summary["final"]["eval_return_mean"],
                **(
                    {"final/eval_win_rate_mean": summary["final"]["eval_win_rate_mean"]}
                    if "eval_win_rate_mean" in summary["final"]
                    else {}
                ),
            }
        )

    def close(self) -> None:
        self.file.close()
        if self.run is not None:
            self.run.finish()


class SilentLogger:
    """The logger of processes other than 0 in a multi-process run: process 0 writes every output."""

    run_id = None

    def log(self, record: dict[str, Any]) -> None:
        pass

    def log_summary(self, summary: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
