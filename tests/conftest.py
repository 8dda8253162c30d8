import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `experiments` importable however pytest is started
# One persistent XLA cache for the session's workers and subprocesses: tests that compile the same program
# again (a resumed run, a second seed block, an evaluation of a saved run) load it instead. Keyed by the
# program and the jax version, so a stale entry is never used.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"jaxfactor-test-xla-cache-{os.getuid()}")
)

# For subprocess tests whose programs are compile-bound (tiny budgets through the CLI): LLVM's -O0 cuts
# their compile time by about a third. Only where every compared result comes from the same process.
COMPILE_FAST_XLA_FLAGS = "--xla_backend_optimization_level=0"
TINY_HOST_RUN = (
    "algo.num_envs=2",
    "algo.batch_size=4",
    "algo.buffer_size=8",
    "algo.agent_hidden_dim=16",
    "algo.mixing_embed_dim=8",
    "algo.hypernet_embed_dim=16",
    "env.test_episodes=2",
    "algo.length_buckets=1",
)
"""Overrides of a host-simulator test run: tiny networks and one batch length (these runs are compile-bound)."""


def train_in_child(args, cwd, timeout: int = 300):
    """`python -m jaxfactor.train ARGS` in a child process on CPU at the fast-compile XLA level (its results are
    compared with nothing from another process), output captured."""
    import subprocess

    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": COMPILE_FAST_XLA_FLAGS}
    cmd = [sys.executable, "-m", "jaxfactor.train", *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


import pytest  # noqa: E402

from jaxfactor import config as config_lib  # noqa: E402
from jaxfactor.cli import load_config  # noqa: E402
from jaxfactor.runner.loop import Callback  # noqa: E402


def killed_run_script(step: int) -> str:
    """A `python -c` program: the CLI's run (validated config, saved overrides) that SIGKILLs its own process
    right after the checkpoint of chunk `step` is on disk."""
    return f"""
import os, signal, sys
from jaxfactor.cli import load_config
from jaxfactor.runner.loop import Callback, run
class KillAfterCheckpoint(Callback):
    def on_checkpoint(self, step, checkpointer):
        if step >= {step}:
            checkpointer.wait()
            os.kill(os.getpid(), signal.SIGKILL)
run(load_config(sys.argv[1:]), overrides=sys.argv[1:], callbacks=[KillAfterCheckpoint()])
"""


def make_cfg(*overrides: str, run_dir: str = "/tmp/jaxfactor-test") -> config_lib.RunConfig:
    """Compose configs/ exactly as the CLI does, then type and validate."""
    return load_config(overrides, run_dir=run_dir, progress="false")


@pytest.fixture
def cfg_factory(tmp_path):
    def factory(*overrides: str):
        return make_cfg(*overrides, run_dir=str(tmp_path / "run"))

    return factory


class TraceCounter(Callback):
    """A run callback counting the traces (= compilations) of the chunk program."""

    def __init__(self):
        self.traces = 0

    def on_trace(self):
        self.traces += 1


def train_briefly(cfg: config_lib.RunConfig, updates: int):
    """`updates` rollout+learn steps of the shared device loop for cfg.num_seeds seeds (one jitted
    vmapped chunk, no evaluation compile): the cheap way to check an algorithm x env trains.
    Returns the per-update metrics [S, U]."""
    import jax

    from jaxfactor.runner.anakin import chunk_for
    from jaxfactor.runner.lanes import build, init_lanes
    from jaxfactor.runner.learn import over_lanes

    env, algo, _ = build(cfg)
    chunk = chunk_for(cfg, algo, env, updates, budget=False)
    _, metrics = jax.jit(over_lanes(chunk))(init_lanes(cfg, algo))
    return jax.device_get(metrics)


def exploring(params, epsilon: float, t_env: int = 0):
    """The epsilon-greedy behaviour of `params` at a fixed epsilon (what `algo.behaviour` derives from a learner)."""
    import jax.numpy as jnp

    from jaxfactor.algos.base import Behaviour

    return Behaviour(params=params, t_env=jnp.int32(t_env), schedule={"epsilon": jnp.float32(epsilon)})


def random_episode(env, key, steps: int):
    """`steps` uniform-random-available steps from a reset (no auto-reset; jittable).
    Returns (final env state, the Timesteps of every step stacked [steps, ...])."""
    import jax

    from jaxfactor.rl.policies import uniform_available

    state, ts = env.reset(key)

    def body(carry, k):
        state, ts = carry
        k_a, k_s = jax.random.split(k)
        state, ts = env.step(k_s, state, uniform_available(k_a, ts.avail))
        return (state, ts), ts

    (state, _), stacked = jax.lax.scan(body, (state, ts), jax.random.split(key, steps))
    return state, stacked


def pytest_collection_modifyitems(items):
    """Longest first (tests marked slow): the two xdist workers then finish together instead of one
    waiting on a long test that started last (longest-processing-time-first scheduling). Tests marked
    extended are skipped unless JAXFACTOR_EXTENDED=1 (CI's 20 minutes do not hold them)."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    if os.environ.get("JAXFACTOR_EXTENDED") != "1":
        skip = pytest.mark.skip(reason="extended tier: run with JAXFACTOR_EXTENDED=1")
        for item in items:
            if item.get_closest_marker("extended"):
                item.add_marker(skip)
