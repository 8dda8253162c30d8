"""Weighted QMIX (ALGORITHMS.md §5): CW-QMIX and OW-QMIX.

QMIX trained with a weighted loss toward a target bootstrapped through an unrestricted central
Q-hat-star (own agents + feed-forward mixer, E_c = 256), which regresses to the same target.
Ablations (§5.8): `algo.central=false` (weights without Q-hat-star: CW compares with, and the target
bootstraps through, the QMIX target network, §12 item 42) and `algo.weighting=uniform` (QMIX + Q-hat-star).
`algo.weighting` takes any registered weighting (`jaxfactor.algos.components.WEIGHTINGS`).
"""

import dataclasses
import functools

from jaxfactor.algos.components import WEIGHTINGS
from jaxfactor.algos.factorised import Variant, make_factorised
from jaxfactor.algos.registry import ALGOS
from jaxfactor.settings import check_mixer, read, reject_unknown, setting


@dataclasses.dataclass(frozen=True)
class WeightedSettings:
    central: bool = setting()
    central_embed_dim: int = setting(low=1)
    central_loss_scale: float = setting(low=0.0)
    weighting: str = setting(choices=WEIGHTINGS)


def make_weighted(cfg, spec, inputs, *, default_weighting: str):
    settings = read(WeightedSettings, cfg)
    rule = WEIGHTINGS.get(settings.weighting)
    # The family's own weighting keys (alpha) stay valid when an ablation picks another rule.
    reject_unknown(cfg, (WeightedSettings, rule, WEIGHTINGS.get(default_weighting)))
    check_mixer(cfg, ("qmix",))
    variant = Variant(
        central_embed_dim=settings.central_embed_dim if settings.central else None,
        central_loss_scale=settings.central_loss_scale,
    )
    return make_factorised(cfg, spec, inputs, variant, weighting=read(rule, cfg)).build(cfg.name)


for _weighting in ("cw", "ow"):
    ALGOS.register(f"{_weighting}_qmix")(functools.partial(make_weighted, default_weighting=_weighting))
