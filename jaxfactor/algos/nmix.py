"""Non-monotonic QMIX (ALGORITHMS.md §8): QMIX's mixer with W1, W2 unconstrained (§8.1).

Three progressively enhanced variants are settings of this one learner:
NM-QMIX (`algo.bootstrap=greedy`, Eq. 27), + SARSA TD(lambda) (`algo.bootstrap=sarsa`: the target mixer
at the stored next joint action, §8.2), + RND (`algo.bonus=rnd`: y built on r_ext + beta r_int, §8.3).
`algo.bonus` takes any registered bonus reward (`jaxfactor.algos.components.BONUSES`).
"""

import dataclasses

from jaxfactor.algos.bonuses import RND
from jaxfactor.algos.components import BONUSES
from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.registry import ALGOS
from jaxfactor.settings import check_mixer, read, reject_unknown, setting


@dataclasses.dataclass(frozen=True)
class NmixSettings:
    bonus: str | None = setting(choices=BONUSES)
    """null = no intrinsic reward."""


@ALGOS.register("nmix")
def make(cfg, spec, inputs):
    settings = read(NmixSettings, cfg)
    bonus = None if settings.bonus is None else BONUSES.get(settings.bonus)
    # RND's keys stay valid with the bonus off (the paper's "Ours" switches it on by one key).
    reject_unknown(cfg, (NmixSettings, RND) + (() if bonus is None else (bonus,)))
    check_mixer(cfg, ("nmix",))
    return make_factorised(cfg, spec, inputs, bonus=None if bonus is None else read(bonus, cfg)).build("nmix")
