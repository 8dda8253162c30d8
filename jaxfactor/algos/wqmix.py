"""Weighted QMIX (ALGORITHMS.md §5): CW-QMIX and OW-QMIX.

QMIX trained with a weighted loss toward a target bootstrapped through an unrestricted central
Q-hat-star (own agents + feed-forward mixer, E_c = 256), which regresses to the same target.
Ablations (§5.8): `algo.central=false` (weights without Q-hat-star: CW compares with, and the target
bootstraps through, the QMIX target network, §12 item 42) and `algo.weighting=uniform` (QMIX + Q-hat-star).
"""

import functools

from jaxfactor.algos.factorised import Variant, make_factorised
from jaxfactor.algos.registry import ALGOS, check_mixer, read_extra
from jaxfactor.errors import ConfigError

SCHEMA = {"central": (bool, None, None), "central_embed_dim": (int, 1, None), "weighting": (str, None, None),
          "alpha": (float, 0.0, 1.0), "central_loss_scale": (float, 0.0, None)}


def make_weighted(cfg, env_cfg, spec, *, default_weighting: str):
    extra = read_extra(cfg, SCHEMA)
    check_mixer(cfg, ("qmix",))
    allowed = (default_weighting, "uniform")
    if extra["weighting"] not in allowed:
        raise ConfigError(f"algo.weighting='{extra['weighting']}' does not fit algo '{cfg.name}'; "
                          f"allowed: {', '.join(allowed)}")
    variant = Variant(central_embed_dim=extra["central_embed_dim"] if extra["central"] else None,
                      weighting=extra["weighting"], alpha=extra["alpha"],
                      central_loss_scale=extra["central_loss_scale"])
    return make_factorised(cfg, env_cfg, spec, variant).build(cfg.name)


for _weighting in ("cw", "ow"):
    ALGOS.register(f"{_weighting}_qmix")(functools.partial(make_weighted, default_weighting=_weighting))
