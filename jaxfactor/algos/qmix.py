"""QMIX (ALGORITHMS.md §3): monotone hypernetwork mixer, TD(lambda) with a double-Q greedy bootstrap."""

from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.registry import ALGOS, reject_extra
from jaxfactor.errors import ConfigError


@ALGOS.register("qmix")
def make(cfg, env_cfg, spec):
    reject_extra(cfg)
    if cfg.mixer != "qmix":
        raise ConfigError(f"algo.mixer='{cfg.mixer}' does not fit algo 'qmix'; allowed: qmix")
    return make_factorised(cfg, env_cfg, spec).build("qmix")
