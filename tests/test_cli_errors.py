"""Bad input gets one line naming the field and the allowed values (exit code 2)."""

import subprocess
import sys

import pytest

from jaxfactor.train import main


@pytest.mark.parametrize("args, expected", [
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
])
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
    out = subprocess.run([sys.executable, "-m", "jaxfactor.train", "algo=vdn", "env=matrix_m2", "--cfg", "job"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "name: vdn" in out.stdout and "name: matrix_m2" in out.stdout
