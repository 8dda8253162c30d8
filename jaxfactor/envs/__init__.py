"""Environments: pure JAX envs returning `Timestep`s with stacked agent arrays."""

# Importing the modules registers their kinds.
from jaxfactor.envs import matrix_games as _matrix_games  # noqa: F401,E402
from jaxfactor.envs import matrix_report as _matrix_report  # noqa: F401,E402
from jaxfactor.envs import mpe as _mpe  # noqa: F401,E402
from jaxfactor.envs import overcooked as _overcooked  # noqa: F401,E402
from jaxfactor.envs import smax as _smax  # noqa: F401,E402
from jaxfactor.envs import stag_hunt as _stag_hunt  # noqa: F401,E402
from jaxfactor.envs.base import ENV_KINDS, ENV_REPORTS, JaxEnv, make_env

__all__ = ["ENV_KINDS", "ENV_REPORTS", "JaxEnv", "make_env"]
