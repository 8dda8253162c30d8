"""`python -m jaxfactor.train algo=<name> env=<name> [num_seeds=N] [key=value ...]`

The command line: compose configs/ (Hydra), type and validate the config (one-line errors before anything
is allocated), then hand it to the run loop (`jaxfactor.runner.loop.run`), which trains `num_seeds` seeds
in one compiled program and writes config.json, metrics.jsonl, checkpoints and summary.json to `run_dir`.
`resume=<run_dir> [step=<n>]` continues a run from its newest (or its n-th) checkpoint; `-m` runs a sweep,
every job validated first, in run_dir/job<k>.

Exit codes: 0 done; 2 bad input (one `jaxfactor: error:` line); 3 every lane (seed x grid point) diverged;
4 a host simulator failed repeatedly (its traceback is printed); 130 / 143 stopped by SIGINT / SIGTERM after
checkpointing (continue with resume=<run_dir>).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from jaxfactor import config as config_lib
from jaxfactor.config import CONFIG_DIR
from jaxfactor.errors import ConfigError


def _hydra_entry() -> None:
    import logging

    import hydra

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # no "TPU not found" noise
    logging.getLogger("absl").setLevel(logging.WARNING)  # orbax logs every save at INFO
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig, OmegaConf

    @hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base=None)
    def _main(cfg: DictConfig) -> float:
        typed = config_lib.from_dict(OmegaConf.to_container(cfg, resolve=True))
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:  # <run_dir>/job<k>, as the sweep resolved it (${now:} moves on)
            typed = dataclasses.replace(typed, run_dir=hydra_cfg.runtime.output_dir)
        from jaxfactor.runner.loop import run
        from jaxfactor.runner.workers import SimulatorFailed

        try:
            result = run(typed, overrides=list(hydra_cfg.overrides.task))
        except ConfigError as e:  # found once Hydra runs the job (e.g. another run holds run_dir): still one line
            print(f"jaxfactor: error: {e}", file=sys.stderr)
            sys.exit(2)
        except SimulatorFailed as e:  # a host simulator failing every time: its traceback, no Hydra noise
            print(f"jaxfactor: simulator failed, run stopped: {e}", file=sys.stderr)
            sys.exit(SIMULATOR_FAILED)
        if result["all_lanes_diverged"] and hydra_cfg.mode == RunMode.RUN:
            sys.exit(ALL_DIVERGED)  # a multirun goes on with its other jobs; their summaries tell
        return result["final"]["eval_return_mean"]

    _main()


ALL_DIVERGED = 3
SIMULATOR_FAILED = 4


def _with_resume(overrides: list[str]) -> list[str]:
    """`resume=<run_dir>`: the run's saved overrides first, then the new ones, and run_dir = that directory,
    so `resume=<dir>` alone continues the run and anything that changes the run is refused later."""
    resume = [o.split("=", 1)[1] for o in overrides if o.startswith("resume=")]
    overrides = [f"resume_step={o.split('=', 1)[1]}" if o.startswith("step=") else o for o in overrides]
    if not resume or resume[-1] in ("null", ""):
        return overrides
    if not (Path(resume[-1]) / "checkpoints").is_dir():
        raise ConfigError(
            f"resume={resume[-1]} is not a run directory with checkpoints; allowed: the run_dir of a "
            "run that saved a checkpoint"
        )
    saved_file = Path(resume[-1]) / "overrides.json"
    try:
        saved = json.loads(saved_file.read_text()) if saved_file.exists() else []
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"resume={resume[-1]}: {saved_file} is damaged ({e})") from None
    if not isinstance(saved, list) or not all(isinstance(o, str) for o in saved):
        raise ConfigError(f"resume={resume[-1]}: {saved_file} is not a list of overrides")
    # distributed.* says how this launch is spread over processes, not what the run is: never carried over
    keep = [o for o in saved if not o.lstrip("+~").startswith(("run_dir=", "resume=", "distributed."))]
    return [*keep, *[o for o in overrides if not o.startswith("run_dir=")], f"run_dir={resume[-1]}"]


def _preflight_sweep(overrides: list[str]) -> None:
    """Each job of a basic-sweeper multirun, expanded as Hydra will and with the run_dir it will get."""
    if any(o.startswith(("hydra/sweeper=", "hydra.sweeper")) for o in overrides):
        return  # another sweeper chooses its own jobs
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from jaxfactor.cli import load_config
    from jaxfactor.runner.preflight import preflight

    parsed = OverridesParser.create().parse_overrides([o for o in overrides if not o.startswith("hydra")])
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    for num, job in enumerate(jobs):
        try:
            cfg = load_config(job)
            preflight(dataclasses.replace(cfg, run_dir=f"{cfg.run_dir}/job{num}"))
        except ConfigError as e:
            raise ConfigError(f"multirun job {num} ({' '.join(job)}): {e}; no job was started") from None


def _print_help(overrides: list[str]) -> None:
    """Hydra's --help lists private groups (configs/*/_*.yaml, the shared bases); this lists what can be chosen."""
    from omegaconf import OmegaConf

    from jaxfactor.cli import GROUPS, compose_config, group_options

    cfg = compose_config(overrides)
    print(__doc__.strip().split("\n\n")[0])
    print("\n== Config groups (group=option) ==")
    for group in GROUPS:
        print(f"{group}: {', '.join(group_options(group))}")
    print("\n== Config (key=value; --cfg job --resolve prints it resolved; -m runs a comma list as a sweep) ==")
    print(OmegaConf.to_yaml(cfg), end="")
    print("\n" + __doc__.strip().split("\n\n")[-1])


def validate_argv(argv: list[str]) -> list[str]:
    """Every check the CLI makes before Hydra runs (a ConfigError naming the field); returns Hydra's argv."""
    from jaxfactor.cli import check_overrides, load_config
    from jaxfactor.runner.preflight import preflight

    if any(a in ("--hydra-help", "--info") or a.startswith(("--cfg", "-c")) for a in argv):
        return argv  # prints a config, runs nothing
    overrides = [a for a in argv if not a.startswith("-")]
    if any(a in ("-m", "--multirun") for a in argv):
        if any(o.startswith("resume=") for o in overrides):
            raise ConfigError("resume= continues one run; allowed: without -m/--multirun")
        check_overrides(overrides)
        _preflight_sweep(overrides)  # every job, before the first one trains
    else:
        overrides = _with_resume(overrides)
        cfg = load_config(overrides)
        from jaxfactor.runner.multihost import initialize

        initialize(cfg.distributed)  # before anything asks JAX for its devices
        preflight(cfg)  # env and algorithm factories validate their own keys
    return [a for a in argv if a.startswith("-")] + overrides


def main(argv: list[str] | None = None) -> None:
    """CLI entry: validate everything up front (one-line errors), then hand over to Hydra."""
    try:
        _main_checked(argv)
    except SystemExit as e:
        _leave_distributed(e)
        raise


def _leave_distributed(e: SystemExit) -> None:
    """In a multi-process run a process that stops on its own (an error only it saw, Hydra's report of an
    exception) leaves at once: Python's exit would wait in jax.distributed's shutdown barrier for the others, which
    wait for it in their next collective; they stop at JAX's heartbeat timeout instead."""
    jax = sys.modules.get("jax")
    if jax is not None and jax.distributed.is_initialized() and jax.process_count() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if code != 0:
            os._exit(code)


def _main_checked(argv: list[str] | None) -> None:
    from jaxfactor.runner.guards import RunInterrupted

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if any(a in ("--help", "-h") for a in argv):
            _print_help([a for a in argv if not a.startswith("-")])
            return
        sys.argv = [sys.argv[0], *validate_argv(argv)]
        _hydra_entry()
    except ConfigError as e:
        print(f"jaxfactor: error: {e}", file=sys.stderr)
        sys.exit(2)
    except RunInterrupted as e:
        print(f"jaxfactor: {e.message}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:  # before training started (validation, compilation): nothing to save
        print("jaxfactor: interrupted before training started; nothing was saved", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
