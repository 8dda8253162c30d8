"""Non-monotonic QMIX (ALGORITHMS.md §8): QMIX's mixer with W1, W2 unconstrained (§8.1).

Three progressively enhanced variants are flags of this one learner:
NM-QMIX (`algo.bootstrap=greedy`, Eq. 27), + SARSA TD(lambda) (`algo.bootstrap=sarsa`: the target mixer
at the stored next joint action, §8.2), + RND (`algo.rnd=true`: y built on r_ext + beta r_int, §8.3).
"""

from jaxfactor.algos.factorised import Variant, make_factorised
from jaxfactor.algos.registry import ALGOS, check_mixer, read_extra

SCHEMA = {"rnd": (bool, None, None), "rnd_coef": (float, 0.0, None), "rnd_lr": (float, 1e-12, None)}


@ALGOS.register("nmix")
def make(cfg, env_cfg, spec):
    extra = read_extra(cfg, SCHEMA)
    check_mixer(cfg, ("nmix",))
    variant = Variant(rnd_coef=extra["rnd_coef"] if extra["rnd"] else None, rnd_lr=extra["rnd_lr"])
    return make_factorised(cfg, env_cfg, spec, variant).build("nmix")
