"""VDN (ALGORITHMS.md §2): Q_tot = sum_i Q_i, TD(lambda) with a double-Q greedy bootstrap."""

from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.registry import ALGOS
from jaxfactor.settings import check_mixer, reject_unknown


@ALGOS.register("vdn")
def make(cfg, spec, inputs):
    reject_unknown(cfg)
    check_mixer(cfg, ("vdn",))
    return make_factorised(cfg, spec, inputs).build("vdn")
