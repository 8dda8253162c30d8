"""Fuzzed command lines (issue 19): typed fields perturbed with wrong types, out-of-range values, NaN/inf,
empty and nested lists, huge sizes and odd strings. Each generated command line goes through everything the
CLI does before compiling (Hydra composition, typing, validation, env and algorithm construction, the memory
checks of the abstract training state, run_dir checks) and must either be accepted or fail with exactly one
`jaxfactor: error:` line that names a perturbed field; anything else (a traceback) fails the test. Accepted
command lines are then trained: the first accepted one for a real tiny budget
(compilation costs 10-20 s per program on CI's CPUs, so not all of them)."""

import dataclasses
import json

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from jaxfactor.errors import ConfigError  # noqa: E402
from jaxfactor.train import validate_argv  # noqa: E402

# A small VDN run on M0: what every perturbation starts from (accepted as it is).
BASE = {
    "algo": "vdn",
    "env": "matrix_m0",
    "num_seeds": "1",
    "total_timesteps": "16",
    "log_every_steps": "8",
    "eval_every_steps": "16",
    "algo.num_envs": "2",
    "algo.batch_size": "2",
    "algo.buffer_size": "4",
    "algo.target_update_episodes": "4",
    "env.test_episodes": "2",
    "algo.agent_hidden_dim": "8",
    "algo.mixing_embed_dim": "4",
    "algo.hypernet_embed_dim": "4",
    "progress": "false",
}
FIELDS = [
    *BASE,
    "seed",
    "num_devices",
    "max_buffer_memory_fraction",
    "algo.lr",
    "algo.gamma",
    "algo.td_lambda",
    "algo.eps_start",
    "algo.eps_finish",
    "algo.eps_anneal_steps",
    "algo.grad_clip",
    "algo.loss_scale",
    "algo.double_q",
    "algo.bootstrap",
    "env.payoff",
    "env.obs_agent_id",
    "env.t_max",
    "checkpoint.every_steps",
    "checkpoint.max_to_keep",
    "checkpoint.buffer",
    "sweep.algo.lr",
    "sweep.algo.gamma",
    "sweep.algo.td_lambda",
    "logger",
    "resume",
    "step",
]
ODD = [
    "null",
    "[]",
    "[[]]",
    "{}",
    "''",
    "abc",
    "[1,2]",
    "[[1,2],[3]]",
    "[0.5,nan]",
    "1e400",
    "-0",
    "0",
    "1",
    "2",
    "0.5",
    "true",
    "false",
    "nan",
    "inf",
    "-inf",
    "1e12",
    "-1",
    "2.5",
    "[1e-3,5e-4]",
    "qmix",
    "${seed}",
    "${nowhere}",
    "[[1,0],[0,1]]",
    "[[[1]]]",
    "ünïcode",
    "a,b",
    "x=y",
    "1_000",
]
VALUES = st.one_of(
    st.sampled_from(ODD),
    st.integers(-10, 64).map(str),  # small: mostly valid sizes
    st.integers(10**9, 10**15).map(str),  # huge sizes
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.lists(st.floats(-2, 2, allow_nan=False).map(lambda v: round(v, 3)), max_size=3).map(
        lambda xs: "[" + ",".join(map(str, xs)) + "]"
    ),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=6),
)
PERTURBATIONS = st.lists(st.tuples(st.sampled_from(FIELDS), VALUES), min_size=1, max_size=2, unique_by=lambda kv: kv[0])


def command_line(perturbations: list[tuple[str, str]], run_dir: str) -> list[str]:
    values = {**BASE, **dict(perturbations)}
    return [f"{k}={v}" for k, v in values.items()] + [f"run_dir={run_dir}"]


def names_a_field(message: str, perturbations: list[tuple[str, str]]) -> bool:
    fields = {k for k, _ in perturbations} | {k.rsplit(".", 1)[-1] for k, _ in perturbations}
    return any(f in message for f in fields) or any(f"{k}={v}" in message for k, v in perturbations)


@pytest.mark.slow
def test_fuzzed_command_lines_are_accepted_or_one_line_errors_naming_a_field(tmp_path):
    outcomes = {"accepted": [], "refused": 0}

    @settings(max_examples=205, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(PERTURBATIONS)
    def check(perturbations):
        argv = command_line(perturbations, str(tmp_path / f"run{outcomes['refused'] + len(outcomes['accepted'])}"))
        try:
            validate_argv(argv)
        except ConfigError as e:
            message = str(e)
            assert "\n" not in message.strip(), (argv, message)
            assert names_a_field(message, perturbations), (argv, message)
            outcomes["refused"] += 1
            return
        outcomes["accepted"].append(argv)

    check()
    accepted, refused = outcomes["accepted"], outcomes["refused"]
    assert len(accepted) + refused >= 200 and refused >= 100 and len(accepted) >= 10, (len(accepted), refused)

    # Accepted command lines train: the first distinct ones for a tiny budget (budget keys capped, nothing else).
    from jaxfactor.cli import load_config
    from jaxfactor.config import to_dict
    from jaxfactor.runner.loop import run

    trained = 0
    seen = set()
    for argv in accepted:
        cfg = load_config(argv)
        key = json.dumps(to_dict(dataclasses.replace(cfg, run_dir="", seed=0)), sort_keys=True, default=str)
        if key in seen or cfg.resume is not None:
            continue
        seen.add(key)
        tiny = dataclasses.replace(
            cfg,
            total_timesteps=min(cfg.total_timesteps, 16),
            log_every_steps=min(cfg.log_every_steps, 16),
            eval_every_steps=min(cfg.eval_every_steps, 16),
        )
        summary = run(tiny)
        assert summary["env_steps"] >= tiny.total_timesteps or summary["all_lanes_diverged"]
        trained += 1
        if trained == 1:
            break
    assert trained == 1
