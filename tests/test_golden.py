"""The learn-step refactor (issue 15) changed no number: three short runs (QMIX and POW-QMIX on matrix games,
S2Q on the small stag hunt) give the per-seed metrics and final parameters recorded before it
(tests/golden_runs.py). XLA:CPU's bits depend on the CPU's vector features, so equality is checked where the
recording's feature set matches this CPU's."""

import math

import numpy as np
import pytest
from golden_runs import RUNS, cpu_features, fingerprint, load, train

GOLDEN = load()


def same_number(a, b) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


IN_CI = ()  # all three are the extended tier (41, 67 and 118 s in CI): JAXFACTOR_EXTENDED=1 before a numeric change


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", [n if n in IN_CI else pytest.param(n, marks=pytest.mark.extended) for n in sorted(RUNS)]
)
def test_golden_run_is_unchanged(name, tmp_path):
    if cpu_features() != GOLDEN["cpu_features"]:
        pytest.skip(
            f"golden recorded on CPU features {GOLDEN['cpu_features']}, this CPU has {cpu_features()}: "
            "XLA:CPU results are bit-reproducible per feature set only"
        )
    expected = GOLDEN["runs"][name]
    lines, params = train(name, tmp_path / name)
    assert len(lines) == len(expected["metrics"])
    for chunk, (got, want) in enumerate(zip(lines, expected["metrics"]), start=1):
        assert sorted(got) == sorted(want), f"chunk {chunk}: metric names changed"
        for key in want:
            assert all(map(same_number, got[key], want[key])), f"chunk {chunk} {key}: {got[key]} != {want[key]}"
    assert sorted(params) == sorted(expected["params"])
    differ = {
        k: (fingerprint(v)["sum"], expected["params"][k]["sum"])
        for k, v in params.items()
        if fingerprint(v) != expected["params"][k]
    }
    assert not differ, f"{len(differ)} parameter leaves differ (sum now, recorded): {dict(list(differ.items())[:4])}"
    assert np.isfinite([p["sum"] for p in expected["params"].values()]).all()
