"""Experiment tooling: exact resume after a real kill, W&B offline, a grid on the seed axis, sharding over
two host devices, GIF rendering and learning-curve plots."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import COMPILE_FAST_XLA_FLAGS, TraceCounter, killed_run_script, make_cfg

from jaxfactor.checkpoint import Checkpointer
from jaxfactor.runner.lanes import setup
from jaxfactor.runner.loop import restore_lanes, run

ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
# QMIX on M0: 504 env steps per chunk, checkpoints every 4 chunks, 8 chunks in all.
SHORT = [
    "num_seeds=2",
    "total_timesteps=4000",
    "log_every_steps=500",
    "eval_every_steps=1000",
    "checkpoint.every_steps=2000",
]


def _train_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "jaxfactor.train", *args], capture_output=True, text=True, timeout=300, env=env or ENV
    )


KILLED_RUN = killed_run_script(4)


def _short_run_script(script: str, run_dir) -> subprocess.CompletedProcess:
    """A script taking the CLI's overrides, run with SHORT in a child process (at the default XLA level: its run is
    compared bit for bit with one trained in this process)."""
    argv = [sys.executable, "-c", script, *SHORT, f"run_dir={run_dir}", "progress=false"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=ENV)


# The CLI itself (`jaxfactor.train.main`), with a callback that sends the process a real SIGINT while the
# checkpoint of chunk 4 is being written (orbax writes asynchronously).
INTERRUPTED_CLI = """
import os, signal, sys
import jaxfactor.runner.loop as loop
class InterruptDuringCheckpoint(loop.Callback):
    def on_checkpoint(self, step, checkpointer):
        if step >= 4:
            os.kill(os.getpid(), signal.SIGINT)
real_run = loop.run
loop.run = lambda cfg, **kw: real_run(cfg, callbacks=[InterruptDuringCheckpoint()], **kw)
from jaxfactor.train import main
main(sys.argv[1:])
"""


def _final_state(run_dir: Path):
    ckpt = Checkpointer(run_dir, 2, True)
    state, meta = restore_lanes(ckpt, setup(make_cfg(*SHORT, run_dir=str(run_dir))))
    ckpt.close()
    return state, meta


def _per_seed_lines(run_dir: Path) -> list[dict]:
    return [
        {k: v for k, v in json.loads(line)["per_seed"].items()}
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
    ]


def _assert_same_run(run_dir: Path, reference: dict, reference_dir: Path) -> None:
    resumed = json.loads((run_dir / "summary.json").read_text())
    assert resumed["final"] == reference["final"] and resumed["matrix"] == reference["matrix"]
    assert resumed["chunks"] == reference["chunks"] == 8
    assert _per_seed_lines(run_dir) == _per_seed_lines(reference_dir)  # chunks 5..8 re-logged, 1..4 kept


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_resume_after_a_real_kill_an_interrupt_or_a_damaged_checkpoint_matches_an_uninterrupted_run(tmp_path, capfd):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = run(make_cfg(*SHORT, run_dir=str(whole)))

    # Same config; the process SIGKILLs itself right after the checkpoint at chunk 4 (N/2) is on disk.
    out = _short_run_script(KILLED_RUN, killed)
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    assert sorted(p.name for p in (killed / "checkpoints").iterdir() if p.name.isdigit()) == ["4"]
    assert not (killed / "summary.json").exists()

    # A changed learning rate is refused (one line, exit 2) before anything runs.
    from jaxfactor.train import main

    lr = json.loads((killed / "config.json").read_text())["algo"]["lr"]
    with pytest.raises(SystemExit) as exit_info:
        main([f"resume={killed}", f"algo.lr={2 * lr}"])
    assert exit_info.value.code == 2
    err = capfd.readouterr().err
    assert f"algo.lr: checkpoint {lr}, now {2 * lr}" in err and "allowed to change on resume" in err

    out = _train_cli(f"resume={killed}", "progress=false")  # the run's own overrides are reused
    assert out.returncode == 0, out.stderr[-2000:]
    assert "resumed" in out.stdout and "at chunk 4" in out.stdout
    _assert_same_run(killed, reference, whole)
    a, meta_a = _final_state(whole)
    b, meta_b = _final_state(killed)
    assert meta_a["chunk"] == meta_b["chunk"] == 8
    same = jax.tree.map(
        lambda x, y: bool(
            np.array_equal(
                jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
                jax.random.key_data(y) if jax.dtypes.issubdtype(y.dtype, jax.dtypes.prng_key) else y,
            )
        ),
        a,
        b,
    )
    assert all(jax.tree.leaves(same)), "parameters, optimiser states, buffers and keys must be bit-identical"

    # Ctrl-C while checkpoint 4 is being written: the write completes, one line, exit 130, no traceback.
    interrupted = tmp_path / "interrupted"
    out = _short_run_script(INTERRUPTED_CLI, interrupted)
    assert out.returncode == 130, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert (
        last == f"jaxfactor: interrupted at 2016 env steps per seed (chunk 4, checkpointed); continue with "
        f"resume={interrupted}"
    ), last
    assert sorted(p.name for p in (interrupted / "checkpoints").iterdir() if p.name.isdigit()) == ["4"]
    assert not (interrupted / "summary.json").exists()
    out = _train_cli(f"resume={interrupted}", "progress=false")
    assert out.returncode == 0 and "at chunk 4" in out.stdout, out.stderr[-2000:]
    _assert_same_run(interrupted, reference, whole)

    # Damage: the newest checkpoint's files cut in half, metrics.jsonl's last line cut short (a crash mid-write).
    damaged = tmp_path / "damaged"
    shutil.copytree(killed, damaged)
    for data in (damaged / "checkpoints" / "8" / "state").rglob("d/*"):
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    metrics = (damaged / "metrics.jsonl").read_text()
    (damaged / "metrics.jsonl").write_text(metrics[: len(metrics) - 200])
    out = _train_cli(f"resume={damaged}", "progress=false")
    assert out.returncode == 0, out.stderr[-2000:]
    notices = [line for line in out.stderr.splitlines() if line.startswith("jaxfactor:")]
    assert any(
        "checkpoint(s) 8 (" in line and "could not be read" in line and line.endswith("using checkpoint 4")
        for line in notices
    ), notices
    assert any("metrics.jsonl: dropping its last line, cut short" in line for line in notices), notices
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert (damaged / "checkpoints" / "8.unreadable").is_dir() and "at chunk 4" in out.stdout
    _assert_same_run(damaged, reference, whole)

    # An older checkpoint on request: `resume=<dir> step=4` sets checkpoint 8 aside and ends on the same run.
    older = tmp_path / "older"
    shutil.copytree(killed, older)
    capfd.readouterr()
    run(make_cfg(*SHORT, f"resume={older}", "resume_step=4", run_dir=str(older)))  # in-process (CLI: step=4)
    out, err = capfd.readouterr()
    assert "at chunk 4" in out
    notices = [line for line in err.splitlines() if line.startswith("jaxfactor:")]
    assert notices == [
        f"jaxfactor: resuming from checkpoint 4; the newer checkpoint(s) 8 under {older}/checkpoints "
        "were renamed to <step>.superseded"
    ], notices
    assert (older / "checkpoints" / "8.superseded").is_dir()
    _assert_same_run(older, reference, whole)
    with pytest.raises(SystemExit) as exit_info:
        main([f"resume={older}", "step=5"])
    err = capfd.readouterr().err.strip().splitlines()[-1]
    assert (
        exit_info.value.code == 2
        and err
        == f"jaxfactor: error: resume={older}: step=5 is not a checkpoint under {older}/checkpoints; allowed: 4, 8"
    ), err


def test_a_grid_of_two_learning_rates_rides_the_seed_axis_of_one_program_and_logs_to_wandb_offline(
    tmp_path, monkeypatch, capfd
):
    monkeypatch.setenv("WANDB_MODE", "offline")  # belt and braces: never touch the network
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no login
    monkeypatch.setenv("NETRC", str(tmp_path / "none"))
    counter = TraceCounter()
    run_dir = tmp_path / "grid"
    grid = ("num_seeds=2", "sweep.algo.lr=[0.001,0.0001]")
    summary = run(
        make_cfg(
            *grid,
            "total_timesteps=3000",
            "log_every_steps=500",
            "eval_every_steps=500",
            "logger=wandb",
            "logger.mode=online",
            "logger.group=unit",
            "logger.tags=[tooling,ci]",
            "logger.per_seed=true",
            run_dir=str(run_dir),
        ),
        callbacks=[counter],
    )

    # The grid: one compilation for all four (lr, seed) programs, results per grid point.
    assert counter.traces == 1
    assert [g["label"] for g in summary["grid"]] == ["lr=0.001", "lr=0.0001"]
    assert all(len(g["eval_return"]) == 2 for g in summary["grid"])
    q = np.asarray(summary["matrix"]["q_tot"])  # [lr0 seed0, lr0 seed1, lr1 seed0, lr1 seed1]
    assert q.shape[0] == 4
    for s in range(2):  # same seed, same key: only the learning rate differs
        assert np.abs(q[s] - q[2 + s]).max() > 1e-3
    ckpt = Checkpointer(run_dir, 2, True)
    state, _ = restore_lanes(ckpt, setup(make_cfg(*grid, run_dir=str(run_dir))))
    ckpt.close()
    lr = state.learner.opt_states["main"].hyperparams["learning_rate"]
    np.testing.assert_allclose(np.asarray(lr), [1e-3, 1e-3, 1e-4, 1e-4], rtol=1e-6)
    first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert set(first["grid"]) == {"lr=0.001", "lr=0.0001"}

    # W&B without a login: one line, then an offline run with the expected keys and config.
    assert "no login found" in capfd.readouterr().err
    offline = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1
    data = offline[0].read_bytes()
    for key in (
        "rollout/return/mean",
        "rollout/return/iqm",
        "eval/return/iqm",
        "train/main/loss/mean",
        "grid/lr=0.0001/eval/return/iqm",
        "seed3/rollout/return",
        "perf/steps_per_s",
        "perf/compile_s",
        "final/eval_return_mean",
        "td_lambda",
        "matrix_m0",
        "unit",
        "tooling",
    ):
        assert key.encode() in data, key

    # Learning curves of the two grid points.
    from PIL import Image

    from jaxfactor.plot import plot

    png = plot([str(run_dir)], metric="train/main/loss", out=tmp_path / "curves.png", reps=200)
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 400 and image.size[1] > 300


SHARDING_SCRIPT = """
import json, sys
from conftest import make_cfg
from jaxfactor.errors import ConfigError
from jaxfactor.runner.lanes import build, init_lanes, seed_sharding
from jaxfactor.runner.loop import run
from jaxfactor.runner.preflight import preflight
args = ["total_timesteps=2000", "log_every_steps=500", "eval_every_steps=500"]
out = {}
for name, extra in (("two", ["num_devices=2", "num_seeds=4"]), ("one_a", ["num_devices=1", "num_seeds=2"]),
                    ("one_b", ["num_devices=1", "num_seeds=2", "seed=2"])):
    cfg = make_cfg(*args, *extra, run_dir=sys.argv[1] + "/" + name)
    out[name] = run(cfg)
    out[name]["metrics"] = [json.loads(l)["per_seed"] for l in open(sys.argv[1] + "/" + name + "/metrics.jsonl")]
cfg = make_cfg(*args, "num_seeds=4", run_dir=sys.argv[1] + "/layout")
env, algo, _ = build(cfg)
out["device_set"] = len(init_lanes(cfg, algo, seed_sharding(cfg)).learner.t_env.sharding.device_set)
try:
    preflight(make_cfg("num_seeds=3", run_dir=sys.argv[1] + "/odd"))
except ConfigError as e:
    out["error"] = str(e)
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.extended  # 84 s in CI (two device layouts compiled in a fresh process)
@pytest.mark.timeout(600)
def test_seed_axis_sharded_over_two_host_devices_matches_one_device(tmp_path):
    """Seeds 0-3 on two devices (two seeds each) = seeds 0-1 and seeds 2-3 each run on one device.
    (XLA's CPU numerics depend on how many seeds one device vmaps, so bit-equality is per seed block.)"""
    done = subprocess.run(
        [sys.executable, "-c", SHARDING_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=500,
        cwd=Path(__file__).parent,
        env={**ENV, "XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {COMPILE_FAST_XLA_FLAGS}"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    two, a, b = out["two"], out["one_a"], out["one_b"]
    assert two["devices"] == 2 and a["devices"] == b["devices"] == 1 and out["device_set"] == 2
    for key in ("q_tot", "utilities", "greedy_joint_action"):
        assert two["matrix"][key] == a["matrix"][key] + b["matrix"][key], key
    assert two["final"]["eval_return"] == a["final"]["eval_return"] + b["final"]["eval_return"]
    for line_two, line_a, line_b in zip(two["metrics"], a["metrics"], b["metrics"], strict=True):
        assert {k: v for k, v in line_two.items()} == {k: line_a[k] + line_b[k] for k in line_two}
    assert "num_seeds=3 cannot be split evenly over 2 devices" in out["error"]


def test_stag_hunt_episode_renders_to_a_gif(tmp_path):
    from PIL import Image

    from jaxfactor.render import record_episode, write_gif
    from jaxfactor.runner.lanes import build

    cfg = make_cfg("env=predator_prey_small")
    env, algo, _ = build(cfg)
    params = algo.init(jax.random.key(0)).params
    episode = jax.jit(lambda p, k: record_episode(algo, env, p, k))(params, jax.random.key(1))
    assert 1 <= int(episode["length"]) <= env.spec.episode_limit
    frames = write_gif("stag_hunt", env, episode, tmp_path / "hunt.gif")
    with Image.open(tmp_path / "hunt.gif") as gif:
        assert gif.n_frames == frames == int(episode["length"]) + 1


def test_the_benchmarks_matmul_flop_count_multiplies_out_scans_loops_and_branches():
    """experiments/bench_algos counts each update's matrix-multiply FLOPs from its jaxpr (XLA's cost analysis
    counts a loop body once): hand-counted on one [128, 64] @ [64, 64] product (2 m n k FLOPs)."""
    import jax.numpy as jnp

    from experiments.bench_algos import matmul_flops

    w, x = jnp.full((64, 64), 0.01), jnp.ones((128, 64))
    one = 2 * 128 * 64 * 64

    def recurrence(w):  # the carry feeds each product: nothing can be hoisted out of the scan
        return jnp.sum(jax.lax.scan(lambda c, _: (jnp.tanh(c @ w), None), x, None, length=5)[0])

    assert matmul_flops(recurrence, w) == 5 * one
    # Its gradient: the forward, then per step the carry's cotangent (c-bar w^T) and w's (c^T c-bar).
    assert matmul_flops(jax.grad(recurrence), w) == 15 * one
    # A traced trip count is a while loop: its count is given (e.g. POW's recogniser steps).
    assert matmul_flops(lambda w, n: jax.lax.fori_loop(0, n, lambda i, c: c @ w, x), w, 3, while_trips=(7,)) == 7 * one
    # A cond costs its costliest branch.
    assert matmul_flops(lambda w, p: jax.lax.cond(p, lambda: x @ w, lambda: x @ w @ w), w, True) == 2 * one
