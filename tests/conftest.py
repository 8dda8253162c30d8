import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402

from jaxfactor import config as config_lib  # noqa: E402
from jaxfactor.cli import load_config  # noqa: E402


def make_cfg(*overrides: str, run_dir: str = "/tmp/jaxfactor-test") -> config_lib.RunConfig:
    """Compose configs/ exactly as the CLI does, then type and validate."""
    return load_config(overrides, run_dir=run_dir, progress="false")


@pytest.fixture
def cfg_factory(tmp_path):
    def factory(*overrides: str):
        return make_cfg(*overrides, run_dir=str(tmp_path / "run"))

    return factory
