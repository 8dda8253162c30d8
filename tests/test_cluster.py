"""Job arrays: a multirun of two jobs through Hydra's basic launcher gives one results table across both jobs;
the shipped SLURM launcher config composes with hydra-submitit-launcher (no cluster needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import train_in_child

ROOT = Path(__file__).resolve().parents[1]


def test_a_multirun_of_two_algorithms_is_one_summary_table(tmp_path, capsys):
    from jaxfactor.summarise import main

    sweep = tmp_path / "sweep"
    multirun = ["-m", "algo=qmix,vdn", "env=matrix_m3", "num_seeds=2", "total_timesteps=200", "log_every_steps=100"]
    done = train_in_child([*multirun, "eval_every_steps=100", f"run_dir={sweep}", "progress=false"], cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    (tmp_path / "unfinished").mkdir()  # a job that never wrote its summary still gets its row
    (tmp_path / "unfinished" / "config.json").write_text((sweep / "job0" / "config.json").read_text())

    main([str(tmp_path), "--out", str(tmp_path / "table.csv")])
    lines = capsys.readouterr().out.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (c.strip() for c in line.strip("|").split("|")))) for line in lines[2:5]]
    assert [(r["run"], r["overrides"], r["algo"]) for r in rows] == [
        ("sweep/job0", "algo=qmix", "qmix"),
        ("sweep/job1", "algo=vdn", "vdn"),
        ("unfinished", "", "qmix"),
    ]
    for row, job in zip(rows, ("job0", "job1")):
        final = json.loads((sweep / job / "summary.json").read_text())["final"]
        assert float(row["return_mean"]) == pytest.approx(final["eval_return_mean"], rel=1e-3)
        assert float(row["return_min"]) == pytest.approx(min(final["eval_return"]), rel=1e-3)
        assert row["seeds"] == "2" and row["status"] == "finished" and row["diverged"] == "0"
    assert rows[2]["status"].startswith("no summary.json") and rows[2]["return_mean"] == ""
    assert (tmp_path / "table.csv").read_text().splitlines()[0].startswith("run,overrides,algo,env,seeds")


def test_the_shipped_slurm_launcher_composes_with_submitit():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e .[cluster]")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxfactor.train",
            "hydra/launcher=slurm",
            "algo=pow_qmix",
            "hydra.launcher.partition=gpu",
            "--cfg",
            "hydra",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    import yaml

    launcher = yaml.safe_load(done.stdout)["hydra"]["launcher"]
    assert launcher["_target_"] == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert launcher["partition"] == "gpu" and launcher["tasks_per_node"] == 1 and launcher["gpus_per_node"] == 1


def test_summarise_refuses_a_directory_without_runs_in_one_line(tmp_path, capsys):
    from jaxfactor.summarise import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == f"jaxfactor: error: {tmp_path} holds no run (no config.json at or below it)"
