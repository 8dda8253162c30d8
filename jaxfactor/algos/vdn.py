"""VDN (ALGORITHMS.md §2): Q_tot = sum_i Q_i, TD(lambda) with a double-Q greedy bootstrap."""

from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.registry import ALGOS, check_mixer, reject_extra


@ALGOS.register("vdn")
def make(cfg, env_cfg, spec):
    reject_extra(cfg)
    check_mixer(cfg, ("vdn",))
    return make_factorised(cfg, env_cfg, spec).build("vdn")
