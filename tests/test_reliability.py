"""A trainer that never lies about a result (issue 19): diverged lanes are results, not successes, across a
resume and in the exit code; damaged metrics files and missing checkpoints give one line, not a traceback.
(Interrupts and damaged checkpoints are exercised against an uninterrupted run in test_tooling.py.)"""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import COMPILE_FAST_XLA_FLAGS, make_cfg, train_in_child

from jaxfactor.errors import ConfigError
from jaxfactor.loggers import read_metrics
from jaxfactor.runner.loop import run

# QMIX on M0, two seeds at a sane learning rate and two at lr = 1e30 (Adam's steps blow the values up to inf).
GRID = ("num_seeds=2", "sweep.algo.lr=[0.001,1e30]", "log_every_steps=500", "checkpoint.every_steps=500")


def test_diverged_lanes_are_left_out_of_every_result_and_stay_diverged_after_a_resume(tmp_path, capsys):
    run_dir = str(tmp_path / "run")
    first = run(make_cfg(*GRID, "total_timesteps=1000", run_dir=run_dir))
    assert set(first["diverged_lanes"]) == {"2", "3"} and not first["all_lanes_diverged"]
    assert first["final"]["diverged"] == [False, False, True, True]
    assert first["final"]["eval_return"][2:] == [None, None] and None not in first["final"]["eval_return"][:2]
    assert first["final"]["eval_return_mean"] == sum(first["final"]["eval_return"][:2]) / 2
    assert first["matrix"]["greedy_joint_action"][2:] == [None, None]  # not an argmax over NaN (action 0)
    ranked = sorted(first["grid"], key=lambda p: p["rank"])
    assert [p["label"] for p in ranked] == ["lr=0.001", "lr=1e+30"] and ranked[1]["eval_return_mean"] is None
    out = capsys.readouterr().out
    assert re.search(r"greedy eval return per seed: \[\S+ \S+ DIVERGED DIVERGED\]", out), out
    assert "#2 grid point lr=1e+30: greedy eval return mean none: every lane diverged (2 of 2 seeds diverged)" in out
    assert "seeds act greedily on an optimal joint action (2 diverged, left out)" in out
    assert "seed 2: DIVERGED (non-finite losses): no learned table" in out
    last = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    assert "train/main/loss" in last["aggregate"] and "train/main/loss" in last["grid"]["lr=0.001"]  # healthy lanes

    resumed = run(make_cfg(*GRID, "total_timesteps=2000", f"resume={run_dir}", run_dir=run_dir))
    assert resumed["chunks"] == 4 and resumed["diverged_lanes"] == first["diverged_lanes"]  # still from chunk 1
    assert resumed["final"]["diverged"] == [False, False, True, True]

    from jaxfactor.evaluate import evaluate

    with pytest.raises(ConfigError, match=r"^step=99 is not a checkpoint under .*; allowed: 3, 4$"):
        evaluate(run_dir, step=99)


@pytest.mark.slow
def test_the_exit_code_says_when_every_lane_diverged(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": COMPILE_FAST_XLA_FLAGS}  # compile-bound
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxfactor.train",
            "num_seeds=1",
            "algo.lr=1e30",
            "total_timesteps=500",
            "log_every_steps=500",
            "run_dir=run",
            "progress=false",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # nothing written outside run_dir (no outputs/)
    assert "EVERY LANE DIVERGED (non-finite losses): lanes 0" in done.stdout
    assert "(mean none: every lane diverged)" in done.stdout and "Traceback" not in done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["all_lanes_diverged"] and summary["final"]["eval_return"] == [None]


def test_a_metrics_file_cut_short_loses_its_last_line_only(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"chunk": 1}\n{"chunk": 2}\n{"chunk": 3, "per_s')
    assert read_metrics(path) == [{"chunk": 1}, {"chunk": 2}]
    assert "dropping its last line, cut short" in capsys.readouterr().err
    path.write_text('{"chunk": 1}\n{"chu\n{"chunk": 3}\n')
    with pytest.raises(ConfigError, match="line 2 is not a JSON record; the file is damaged"):
        read_metrics(path)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["algo.lr=nan"], "algo.lr=nan is out of range; allowed: (0, inf)"),
        (["algo.gamma=inf"], "algo.gamma=inf is out of range; allowed: [0, 1]"),
        (["sweep.algo.lr=[0.001,nan]"], "sweep.algo.lr=nan is out of range"),
        (["env=matrix", "env.payoff=[[1,nan],[0,0]]"], "env.payoff holds nan; allowed: finite numbers"),
        (["algo=pow_qmix", "algo.pow_tolerance=inf"], "algo.pow_tolerance=inf is not a finite number"),
        (["total_timesteps=2.5"], "total_timesteps must be int, got 2.5"),
        (
            ["env=predator_prey_small", "env.penalty=abc"],
            "env.penalty='abc' is not a number; allowed: a number in [-inf, 0]",
        ),
        (["env=smax_3m", "env.max_steps=nan"], "env.max_steps=nan is not an integer; allowed: an integer in [1, inf)"),
        (
            ["env=mpe_simple_spread", "env.local_ratio=1.5"],
            "env.local_ratio=1.5 is out of range; allowed: a number in [0, 1]",
        ),
        (["env=overcooked_cramped_room", "env.max_steps=true"], "env.max_steps=True is not an integer"),
        (["algo=qmix,vdn"], "allowed: one value, a list in brackets, or -m to run algo=qmix,vdn as a sweep"),
        (["algo.lr=[0.1"], "no viable alternative at input '[0.1'"),
        (
            ["algo.target_update_episodes=9567191577"],
            "algo.target_update_episodes=9567191577 is out of range; allowed: at most 2147483647 (int32 counters)",
        ),
        (["seed=2147483647", "num_seeds=2"], "seed + num_seeds - 1 at most 2147483647"),
        (
            ["algo.eps_start=0.05", "algo.eps_finish=0.5"],
            "algo.eps_finish=0.5 > algo.eps_start=0.05; allowed: eps_finish "
            "<= eps_start (equal for a constant epsilon)",
        ),
        (["sweep.algo.eps_start=[1.0,0.01]", "algo.eps_finish=0.05"], "at grid point {'algo.eps_start': 0.01}"),
        (["step=3"], "step=3 picks the checkpoint a resume continues from; allowed: with resume=<run_dir>"),
        (["-m", "algo.lr=0.001,-1"], "multirun job 1 (algo.lr=-1"),
        (
            ["-m", "env=predator_prey_small,matrix_m0", "env.penalty=-1"],
            "multirun job 1 (env=matrix_m0 env.penalty=-1 run_dir=",
        ),
    ],
)
def test_nan_inf_bad_env_numbers_and_composition_are_one_line_errors(args, expected, capfd, tmp_path):
    from jaxfactor.train import main

    with pytest.raises(SystemExit) as exit_info:
        main([*args, f"run_dir={tmp_path}/run", "progress=false"])
    out, err = capfd.readouterr()
    err = err.strip()
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and expected in err, err
    assert out == "", out  # nothing else on the console (jaxmarl's import notices are silenced)
    assert not any(tmp_path.iterdir()), "nothing is written (a multirun starts no job)"


@pytest.mark.parametrize(
    "command, expected",  # command: the tool, then its arguments
    [
        (
            "evaluate run_dir={run} render=true gif={tmp}/x.png",
            "gif={tmp}/x.png has an unknown extension '.png'; allowed: .gif",
        ),
        (
            "evaluate run_dir={run} render=true gif={tmp}/a_file/x.gif",
            "gif={tmp}/a_file/x.gif cannot be written ({tmp}/a_file is not a writable directory)",
        ),
        ("evaluate run_dir={run} gif={tmp}/x.gif", "gif={tmp}/x.gif needs render=true"),
        ("evaluate run_dir={run} episodes=0", "episodes=0 is out of range; allowed: an integer >= 1"),
        ("evaluate run_dir={run}", "{run}/config.json is damaged (Expecting value"),
        ("evaluate run_dir={tmp}", "run_dir={tmp} is not a run directory (no config.json there)"),
        ("plot {run} --reps 0", "--reps 0 is out of range; allowed: an integer >= 1"),
        ("plot {run} --reps many", "argument --reps: invalid int value: 'many'; see python -m jaxfactor.plot"),
        (
            "plot {run} --out {tmp}/curves.docx",
            "--out={tmp}/curves.docx has an unknown extension '.docx'; allowed: .avif, .eps, .gif",
        ),
        ("plot {run} --out {tmp}", "--out={tmp} has an unknown extension ''"),
        ("plot {run} --out {tmp}/a_file/c.png", "cannot be written ({tmp}/a_file is not a writable directory)"),
        ("plot", "the following arguments are required: run_dirs"),
        ("plot {run}", "{run}/config.json is damaged (Expecting value"),
    ],
)
def test_evaluate_and_plot_arguments_are_one_line_errors(command, expected, tmp_path, capfd):
    import importlib

    tool, *args = command.split()

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"algo": ')  # cut short
    (run_dir / "metrics.jsonl").write_text('{"chunk": 1}\n')
    (tmp_path / "a_file").write_text("")
    fill = {"{run}": str(run_dir), "{tmp}": str(tmp_path)}
    for key, value in fill.items():
        args, expected = [a.replace(key, value) for a in args], expected.replace(key, value)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"jaxfactor.{tool}").main(args)
    err = capfd.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.splitlines() == [err] and err.startswith("jaxfactor: error: "), err
    assert expected in err, err


def test_integral_floats_are_accepted_for_integer_fields():
    cfg = make_cfg("total_timesteps=2e6", "algo.buffer_size=1e3", "algo=pow_qmix", "algo.pow_warmup_steps=1e5")
    assert cfg.total_timesteps == 2_000_000 and cfg.algo.buffer_size == 1000
    from jaxfactor.runner.lanes import build

    assert build(cfg)[1].name == "pow_qmix" and isinstance(cfg.total_timesteps, int)


def test_one_process_per_run_dir(tmp_path, capfd):
    from jaxfactor.runner.guards import RunDirLock

    (tmp_path / "run").mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "run" / ".lock").write_text(str(sleeper.pid))  # a live run holds it
        done = subprocess.run(
            [sys.executable, "-m", "jaxfactor.train", f"run_dir={tmp_path}/run", "progress=false"],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "JAX_PLATFORMS": "cpu"},
        )
        assert done.returncode == 2, done.stderr[-2000:]
        err = [line for line in done.stderr.splitlines() if "jaxfactor" in line]
        assert err == [
            f"jaxfactor: error: run_dir={tmp_path}/run is in use by another run (pid {sleeper.pid}); "
            "allowed: another run_dir"
        ], done.stderr[-2000:]
        assert "Traceback" not in done.stderr
    finally:
        sleeper.kill()
        sleeper.wait()
    with RunDirLock(tmp_path / "run"):  # the holder is gone: its lock is stale and taken over
        assert (tmp_path / "run" / ".lock").read_text() == str(os.getpid())
    assert not (tmp_path / "run" / ".lock").exists()
    (tmp_path / "file").write_text("")
    from jaxfactor.train import main

    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main([f"run_dir={tmp_path}/file", "progress=false"])
    err = capfd.readouterr().err.strip()
    assert (
        exit_info.value.code == 2
        and err == f"jaxfactor: error: run_dir={tmp_path}/file is a file; allowed: a directory (new or a run's own)"
    ), err


def test_a_multirun_writes_only_inside_its_run_dir_and_help_lists_public_options(tmp_path, capsys):
    from jaxfactor.train import main

    multirun = ["-m", "seed=0,1", "num_seeds=1", "total_timesteps=100", "log_every_steps=100"]
    done = train_in_child([*multirun, "eval_every_steps=100", "run_dir=sweep", "progress=false"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == ["sweep"]  # no multirun/, outputs/ or .hydra/ in the cwd
    sweep = tmp_path / "sweep"
    assert sorted(p.name for p in sweep.iterdir()) == ["job0", "job1", "multirun.yaml"]
    seeds = [json.loads((sweep / job / "summary.json").read_text())["seed"] for job in ("job0", "job1")]
    assert seeds == [0, 1]
    capsys.readouterr()

    main(["--help"])
    out = capsys.readouterr().out
    groups = {
        line.split(": ")[0]: line.split(": ")[1].split(", ")
        for line in out.splitlines()
        if line.startswith(("algo: ", "env: ", "logger: "))
    }
    assert "qmix" in groups["algo"] and "smax_3m" in groups["env"] and groups["logger"] == ["console", "wandb"]
    assert not [o for options in groups.values() for o in options if o.startswith("_")], groups
