"""One program over several processes: two local `jax.distributed` processes (localhost coordinator, gloo CPU
collectives, 2 host devices each) train the same 4 QMIX seeds as one process over 4 devices, bit for bit; a
two-process run killed after its first checkpoint resumes with two processes to the uninterrupted run's end,
and with one process it is refused in one line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import COMPILE_FAST_XLA_FLAGS, TINY_HOST_RUN, killed_run_script

ROOT = Path(__file__).resolve().parents[1]
RUN = [
    "num_seeds=4",
    "env=matrix_m3",
    "total_timesteps=2000",
    "log_every_steps=1000",
    "eval_every_steps=1000",
    "checkpoint.every_steps=1000",
    "progress=false",
]

pytestmark = pytest.mark.xdist_group("multihost")  # the two processes of a run need the two cores


def _env(devices: int) -> dict[str, str]:
    # Compile-bound runs: LLVM -O0 (conftest) in every process; compared runs all come from these subprocesses.
    flags = f"--xla_force_host_platform_device_count={devices} {COMPILE_FAST_XLA_FLAGS}"
    return {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(
    program: list[str], args: list[str], processes: int, devices: int, timeout: float = 300
) -> list[subprocess.CompletedProcess]:
    """`processes` copies of `program args` as one jax.distributed program; their (rc, stdout, stderr)."""
    extra = []
    port = _free_port()
    procs = []
    for i in range(processes):
        if processes > 1:
            extra = [
                f"distributed.coordinator_address=localhost:{port}",
                f"distributed.num_processes={processes}",
                f"distributed.process_id={i}",
            ]
        procs.append(
            subprocess.Popen(
                [sys.executable, *program, *args, *extra],
                cwd=ROOT,
                env=_env(devices),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    done = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:
        for p in procs:
            p.kill()
    return done


def _train(args: list[str], processes: int = 2, devices: int = 2) -> list[subprocess.CompletedProcess]:
    done = _launch(["-m", "jaxfactor.train"], args, processes, devices)
    for d in done:
        assert d.returncode == 0, d.stderr[-3000:]
    return done


OUR_MARKERS = ("jaxfactor", "compiling ", "== ", "outputs: ", "resumed ", "greedy eval", "seed ")


def _ours(text: str) -> list[str]:
    """Lines this project printed (gloo's unbuffered C++ connection messages, which interleave, left out)."""
    return [line for line in text.splitlines() if any(m in line for m in OUR_MARKERS)]


def _final_state(run_dir: Path, overrides: list[str] = RUN) -> dict:
    """Every leaf of the run's final checkpoint (parameters, optimiser, replay, keys), read in this process."""
    import jax

    from jaxfactor.checkpoint import Checkpointer, to_host
    from jaxfactor.cli import load_config
    from jaxfactor.runner.lanes import abstract_lanes, build

    cfg = load_config(overrides, run_dir=str(run_dir))
    _, algo, _ = build(cfg)
    ckpt = Checkpointer(run_dir, 2, True)
    try:  # a checkpoint of several processes is read into this process's one device
        fields, meta = ckpt.restore(abstract_lanes(cfg, algo, jax.sharding.SingleDeviceSharding(jax.devices()[0])))
    finally:
        ckpt.close()
    return {"state": to_host(fields), "meta": meta}


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess]]:
    run_dir = tmp_path_factory.mktemp("multihost") / "two"
    return run_dir, _train([*RUN, f"run_dir={run_dir}", "logger=wandb", "logger.mode=offline"])


def _assert_same_run(
    a: Path, b: Path, overrides: list[str] = RUN, keys=("final", "env_steps_per_seed", "matrix", "chunks")
) -> None:
    import jax

    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    for key in keys:
        assert sa[key] == sb[key], key
    fa, fb = _final_state(a, overrides), _final_state(b, overrides)
    assert fa["meta"]["env_steps"] == fb["meta"]["env_steps"]
    same = jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), fa["state"], fb["state"])
    assert all(jax.tree.leaves(same)), [
        jax.tree_util.keystr(p) for p, v in jax.tree_util.tree_leaves_with_path(same) if not v
    ][:5]


def test_two_processes_train_the_seeds_of_one_process_bit_for_bit_and_only_process_0_writes(two_process_run, tmp_path):
    run_dir, (p0, p1) = two_process_run
    single = tmp_path / "one"
    _train([*RUN, f"run_dir={single}"], processes=1, devices=4)
    _assert_same_run(run_dir, single)

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["devices"] == 4
    assert "over 2 processes" in p0.stdout and f"== {summary['algo']} on matrix_m3" in p0.stdout
    assert _ours(p1.stdout) == [] and _ours(p1.stderr) == []  # process 1 printed nothing of ours
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == summary["chunks"] == 2
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # one W&B run, process 0's
    assert not (run_dir / ".lock").exists()
    evaluated = subprocess.run(
        [sys.executable, "-m", "jaxfactor.evaluate", f"run_dir={run_dir}", "episodes=2"],
        cwd=ROOT,
        env=_env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]  # one process reads the two processes' checkpoint
    assert [
        line.split(":")[0].strip() for line in evaluated.stdout.splitlines() if line.strip().startswith("seed ")
    ] == ["seed 0", "seed 1", "seed 2", "seed 3"]


def test_a_killed_two_process_run_resumes_with_two_processes_exactly_and_one_process_is_refused(
    two_process_run, tmp_path
):
    reference, _ = two_process_run
    run_dir = tmp_path / "killed"
    args = [*RUN, f"run_dir={run_dir}", "logger=wandb", "logger.mode=offline"]
    killed = _launch(["-c", killed_run_script(1)], args, processes=2, devices=2)
    assert [k.returncode for k in killed] == [-9, -9], [k.stderr[-2000:] for k in killed]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["1"]

    alone = _launch(["-m", "jaxfactor.train"], [f"resume={run_dir}"], processes=1, devices=4)[0]
    assert alone.returncode == 2
    errors = _ours(alone.stderr)
    assert len(errors) == 1 and "written by 2 process(es), this run has 1" in errors[0], alone.stderr[-2000:]
    assert "distributed.num_processes=2" in errors[0]

    p0, _ = _train([f"resume={run_dir}"])
    assert f"resumed {run_dir} at chunk 1" in p0.stdout
    _assert_same_run(run_dir, reference)


def test_an_unreachable_coordinator_or_a_busy_port_is_one_line_not_an_abort(tmp_path):
    """JAX's distributed client aborts the process when it cannot register; the run checks first."""
    late = _launch(
        ["-m", "jaxfactor.train"],
        [
            f"run_dir={tmp_path}/a",
            f"distributed.coordinator_address=localhost:{_free_port()}",
            "distributed.num_processes=2",
            "distributed.process_id=1",
            "distributed.initialization_timeout_s=2",
        ],
        processes=1,
        devices=1,
    )[0]
    assert late.returncode == 2 and len(_ours(late.stderr)) == 1, late.stderr[-2000:]
    assert "was not reachable from process 1 within distributed.initialization_timeout_s=2" in late.stderr
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        first = _launch(
            ["-m", "jaxfactor.train"],
            [
                f"run_dir={tmp_path}/b",
                f"distributed.coordinator_address=localhost:{port}",
                "distributed.num_processes=2",
                "distributed.process_id=0",
            ],
            processes=1,
            devices=1,
        )[0]
    assert first.returncode == 2 and len(_ours(first.stderr)) == 1, first.stderr[-2000:]
    assert f"process 0 cannot serve on port {port}" in first.stderr


HOST = [
    "algo=qmix",
    "env=sc2_3m",
    "env.simulator=fake",
    "env.fake_restart_prob=0.01",
    "num_seeds=4",
    "total_timesteps=150",
    "log_every_steps=100",
    *TINY_HOST_RUN,
    "host.workers=1",
    "progress=false",
]


def test_host_simulators_over_two_processes_each_driving_its_own_lanes_equal_one_process(tmp_path):
    """Fake SMAC (in-band restarts included): each process starts a worker for its 2 lanes; the run equals one
    process stepping all 4 lanes, and the crash counts are summed over the processes."""
    two, one = tmp_path / "two", tmp_path / "one"
    _train([*HOST, f"run_dir={two}"])
    _train([*HOST, f"run_dir={one}"], processes=1, devices=4)
    _assert_same_run(two, one, HOST, keys=("final", "env_steps_per_seed", "chunks"))
    h2, h1 = (json.loads((d / "summary.json").read_text())["host"] for d in (two, one))
    assert h2["workers"] == 2 and h1["workers"] == 1  # one worker per process
    assert h2["invalid_episodes"] == h1["invalid_episodes"] > 0  # restarts happened, counted over both processes
    assert h2["discarded_episodes"] == h1["discarded_episodes"]
