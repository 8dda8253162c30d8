"""QMIX (ALGORITHMS.md §3): monotone hypernetwork mixer, TD(lambda) with a double-Q greedy bootstrap."""

from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.registry import ALGOS, check_mixer, reject_extra


@ALGOS.register("qmix")
def make(cfg, env_cfg, spec):
    reject_extra(cfg)
    check_mixer(cfg, ("qmix",))
    return make_factorised(cfg, env_cfg, spec).build("qmix")
