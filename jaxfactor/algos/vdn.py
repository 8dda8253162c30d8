"""VDN (ALGORITHMS.md §2): Q_tot = sum_i Q_i, TD(lambda) with a double-Q greedy bootstrap."""

from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.registry import ALGOS, reject_extra
from jaxfactor.errors import ConfigError


@ALGOS.register("vdn")
def make(cfg, env_cfg, spec):
    reject_extra(cfg)
    if cfg.mixer != "vdn":
        raise ConfigError(f"algo.mixer='{cfg.mixer}' does not fit algo 'vdn'; allowed: vdn")
    return make_factorised(cfg, env_cfg, spec).build("vdn")
