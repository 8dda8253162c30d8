"""Algorithms: each module registers a factory `make(cfg, spec, inputs) -> Algorithm`."""

# Importing the modules registers them.
from jaxfactor.algos import me_igm as _me_igm  # noqa: F401,E402
from jaxfactor.algos import nmix as _nmix  # noqa: F401,E402
from jaxfactor.algos import pow as _pow  # noqa: F401,E402
from jaxfactor.algos import qmix as _qmix  # noqa: F401,E402
from jaxfactor.algos import qplex as _qplex  # noqa: F401,E402
from jaxfactor.algos import s2q as _s2q  # noqa: F401,E402
from jaxfactor.algos import vdn as _vdn  # noqa: F401,E402
from jaxfactor.algos import wqmix as _wqmix  # noqa: F401,E402
from jaxfactor.algos.registry import ALGOS, make_algo

__all__ = ["ALGOS", "make_algo"]
