"""QPLEX (ALGORITHMS.md §4): duplex dueling mixer; target = target QPLEX at the online greedy action
with the target utilities' own max (§4.3)."""

from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.registry import ALGOS, check_mixer, read_extra


@ALGOS.register("qplex")
def make(cfg, env_cfg, spec):
    extra = read_extra(cfg, {"adv_hypernet_layers": (int, 2, None)})
    check_mixer(cfg, ("qplex",))
    return make_factorised(cfg, env_cfg, spec, adv_layers=extra["adv_hypernet_layers"]).build("qplex")
