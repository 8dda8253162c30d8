"""QPLEX (ALGORITHMS.md §4): duplex dueling mixer; target = target QPLEX at the online greedy action
with the target utilities' own max (§4.3)."""

from jaxfactor.algos.factorised import make_factorised, mixer_settings
from jaxfactor.algos.registry import ALGOS
from jaxfactor.settings import check_mixer, reject_unknown


@ALGOS.register("qplex")
def make(cfg, spec, inputs):
    check_mixer(cfg, ("qplex",))
    reject_unknown(cfg, mixer_settings(cfg))
    return make_factorised(cfg, spec, inputs).build("qplex")
