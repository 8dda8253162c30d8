"""QMIX (ALGORITHMS.md §3): monotone hypernetwork mixer, TD(lambda) with a double-Q greedy bootstrap."""

from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.registry import ALGOS
from jaxfactor.settings import check_mixer, reject_unknown


@ALGOS.register("qmix")
def make(cfg, spec, inputs):
    reject_unknown(cfg)
    check_mixer(cfg, ("qmix",))
    return make_factorised(cfg, spec, inputs).build("qmix")
