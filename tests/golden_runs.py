"""Golden runs of the learn-step refactor (issue 15): three short `train.run` jobs whose per-seed metrics and
final parameters were recorded BEFORE the runner was split, so the refactor is checked to change no number.

Re-record only in a commit of its own that names the deliberate numeric change (DEVELOPERS.md):
    JAX_PLATFORMS=cpu .venv/bin/python -m tests.golden_runs
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import jax
import numpy as np

GOLDEN = Path(__file__).resolve().parent / "data" / "learn_step_golden.json"
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512dq",
    "avx512_bf16",
    "avx512_vnni",
    "amx_tile",
)
"""CPU features that change XLA:CPU code generation (vector width, FMA): bit-equality holds per feature set."""
COMMON = ("num_seeds=2", "progress=false")
RUNS = {
    # QMIX on a matrix game: 4 chunks of 63 updates, learning from the 16th update.
    "qmix_matrix": (
        "algo=qmix",
        "env=matrix_m1",
        "total_timesteps=2000",
        "log_every_steps=500",
        "eval_every_steps=1000",
        "algo.eps_anneal_steps=1500",
    ),
    # POW-QMIX with its weighting and recogniser stage on from the start (the paper's matrix setting).
    "pow_qmix_matrix": (
        "algo=pow_qmix",
        "env=matrix_m3",
        "total_timesteps=1000",
        "log_every_steps=250",
        "eval_every_steps=500",
        "algo.batch_size=32",
        "algo.pow_warmup_steps=0",
        "algo.pow_tolerance=0.05",
        "algo.alpha=0",
        "algo.target_update_episodes=40",
    ),
    # S2Q on the small stag hunt: recurrent agents, 50-slot episodes, target copies and a sub-value softmax.
    "s2q_predator_prey": (
        "algo=s2q",
        "env=predator_prey_small",
        "total_timesteps=2400",
        "log_every_steps=800",
        "eval_every_steps=1600",
        "algo.num_envs=4",
        "algo.batch_size=8",
        "algo.buffer_size=32",
        "algo.target_update_episodes=8",
        "algo.eps_anneal_steps=2000",
        "env.test_episodes=4",
    ),
}


def train(name: str, run_dir: Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """(per-seed metrics of every chunk, final parameters as {leaf path: [S, ...] array}) of one golden run."""
    from conftest import make_cfg

    from jaxfactor.runner.loop import run

    cfg = make_cfg(*COMMON, *RUNS[name], run_dir=str(run_dir))
    run(cfg)
    lines = [json.loads(line)["per_seed"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return lines, final_params(cfg, run_dir)


def final_params(cfg, run_dir: Path) -> dict[str, np.ndarray]:
    """The final checkpoint's learner parameters, flattened to {leaf path: array}."""
    from golden_restore import restore_params

    params = restore_params(cfg, run_dir)
    return {
        jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
    }


def fingerprint(value: np.ndarray) -> dict:
    """Exact identity (sha256 of the bytes) plus sums that say how far apart two leaves are when they differ."""
    import hashlib

    v = np.ascontiguousarray(value)
    return {
        "dtype": str(v.dtype),
        "shape": list(v.shape),
        "sha256": hashlib.sha256(v.tobytes()).hexdigest(),
        "sum": float(v.astype(np.float64).sum()),
        "sum_sq": float((v.astype(np.float64) ** 2).sum()),
    }


def cpu_features() -> list[str]:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return [platform.machine()]
    present = set(flags.split(":", 1)[1].split())
    return [platform.machine()] + [f for f in ISA_FLAGS if f in present]


def record(out: Path = GOLDEN) -> None:
    import tempfile

    golden = {"cpu_features": cpu_features(), "cpu_model": _cpu_model(), "jax": jax.__version__, "runs": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in RUNS:
            lines, params = train(name, Path(tmp) / name)
            golden["runs"][name] = {"metrics": lines, "params": {k: fingerprint(v) for k, v in params.items()}}
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


def load(path: Path = GOLDEN) -> dict:
    return json.loads(path.read_text())


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    record()
