"""Bad input gets one line naming the field and the allowed values (exit code 2)."""

import subprocess
import sys

import pytest

from jaxfactor.train import main


@pytest.mark.parametrize(
    "args, expected",
    [
        (["algo=nope"], ["algo 'nope'", "allowed:", "qmix", "vdn"]),
        (["env=nope"], ["env 'nope'", "allowed:", "matrix_m1", "smax_3m"]),
        (["env=matrix", "env.payoff=[[1,2,3],[4,5]]"], ["env.payoff", "ragged"]),
        (["env=matrix", "env.payoff=[[1,2,3],[4,5,6]]"], ["env.payoff", "same number of actions"]),
        (["algo.eps_start=1.5"], ["algo.eps_start=1.5", "allowed: [0, 1]"]),
        (["algo.eps_finish=-0.1"], ["algo.eps_finish=-0.1", "allowed: [0, 1]"]),
        (["num_seeds=0"], ["num_seeds=0", "allowed: [1, inf)"]),
        (["foo=1"], ["unknown key 'foo'", "num_seeds"]),
        (["algo.foo=1"], ["unknown key 'algo.foo'", "allowed keys in algo:", "lr"]),
        (["env=smax_3m", "env.map_name=nowhere"], ["env.map_name 'nowhere'", "3m"]),
        (["algo=cw_qmix", "algo.bootstrap=sarsa"], ["algo.bootstrap=sarsa", "allowed: bootstrap=greedy"]),
        (["algo=pow_qmix", "algo.double_q=false"], ["algo.double_q=False", "allowed: bootstrap=greedy"]),
        (["algo=qmix", "algo.alpha=0.5"], ["unknown key 'algo.alpha'"]),
        (["sweep.algo.batch_size=[1,2]"], ["unknown key 'sweep.algo.batch_size'", "allowed keys in sweep.algo:", "lr"]),
        (["sweep.algo.lr=0.001"], ["sweep.algo.lr must be a non-empty list of numbers"]),
        (["sweep.algo.lr=[0.001,-1]"], ["sweep.algo.lr=-1.0", "allowed: (0, inf)"]),
        (["sweep.algo.td_lambda=[0.5,2]"], ["sweep.algo.td_lambda=2.0", "allowed: [0, 1]"]),
        (["logger=nope"], ["logger 'nope'", "allowed:", "console", "wandb"]),
        (["logger=wandb", "logger.mode=sometimes"], ["logger.mode='sometimes'", "allowed: online, offline, disabled"]),
        (["checkpoint.every_steps=0"], ["checkpoint.every_steps=0", "allowed: [1, inf)"]),
        (["runner.layout=chunks"], ["runner.layout='chunks' is unknown", "allowed: episodes, segments"]),
        (["runner.segment_length=0"], ["runner.segment_length=0", "allowed: [1, inf)"]),
        (["runner.lane_groups=0"], ["runner.lane_groups=0", "allowed: [1, inf)"]),
        (
            ["num_seeds=3", "runner.lane_groups=2"],
            ["runner.lane_groups=2 does not split 3 lanes", "allowed: a divisor of 3"],
        ),
        (
            ["env=sc2_3m", "env.simulator=fake", "num_seeds=2", "runner.lane_groups=2"],
            ["runner.lane_groups=2 groups the lanes of the compiled chunk", "allowed: runner.lane_groups=1"],
        ),
        (["algo.optimizer=sgd"], ["algo.optimizer='sgd' is unknown", "allowed: adam, radam"]),
        (["algo.epochs=0"], ["algo.epochs=0", "allowed: [1, inf)"]),
        (
            ["env=sc2_3m", "env.simulator=fake", "runner.layout=segments"],
            ["runner.layout=segments collects inside the compiled program", "allowed: runner.layout=episodes"],
        ),
        (["num_devices=64"], ["num_devices=64", "allowed: 1..1"]),
        (["distributed.num_processes=2"], ["distributed.coordinator_address is null", "allowed: all of"]),
        (
            ["distributed.coordinator_address=localhost:1", "distributed.num_processes=2", "distributed.process_id=2"],
            ["distributed.process_id=2", "allowed: [0, 1]"],
        ),
        (
            ["distributed.coordinator_address=localhost", "distributed.num_processes=2", "distributed.process_id=0"],
            ["distributed.coordinator_address='localhost' has no port"],
        ),
        (
            [
                "distributed.coordinator_address=localhost:1",
                "distributed.num_processes=2",
                "distributed.process_id=1",
                "num_devices=1",
            ],
            ["num_devices=1 picks devices of process 0 only"],
        ),
    ],
)
def test_one_line_error(args, expected, capfd, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main([*args, f"run_dir={tmp_path}", "progress=false"])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err.strip()  # fd-level: importing jaxmarl rebinds sys.stderr
    assert len(err.splitlines()) == 1, err
    assert err.startswith("jaxfactor: error:")
    for fragment in expected:
        assert fragment in err, (fragment, err)


def test_config_resolves_from_any_directory(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "jaxfactor.train", "algo=vdn", "env=matrix_m2", "--cfg", "job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "name: vdn" in out.stdout and "name: matrix_m2" in out.stdout


def test_a_fresh_run_never_overwrites_a_run_with_checkpoints(capfd, tmp_path):
    (tmp_path / "checkpoints" / "3").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        main([f"run_dir={tmp_path}", "progress=false"])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err
    assert "already holds a run with checkpoints" in err and f"resume={tmp_path}" in err


def test_a_valid_sweep_passes_the_checks(tmp_path):
    from jaxfactor.cli import load_config
    from jaxfactor.runner.preflight import preflight

    cfg = load_config(
        [
            "num_seeds=3",
            "sweep.algo.lr=[0.001,0.002]",
            "sweep.algo.gamma=[0.9,0.99]",
            "num_devices=1",
            f"run_dir={tmp_path}",
        ]
    )
    preflight(cfg)
    assert len(cfg.grid) == 4 and cfg.grid[1] == {"algo.lr": 0.001, "algo.gamma": 0.99}
