"""POW (ALGORITHMS.md §6): potentially-optimal joint actions weighting on QMIX, VDN or QPLEX.

Per batch (§6.6, code order): N_r Adam steps of the recognition module Q_r on L_r (20 on the first
update, 10 after; its own optimiser, clipping over its own parameters, §12 item 16); then weights
w = 1 on P(s) = {u : |Q_r - V_r| < eps_r}, alpha = 0 outside (unweighted during the warm-up);
then one step on L_tot + L_* (factorised + central, E_c = 64), both with the 1/2 factor.
The weighting is the `pow` component (`weightings.PotentiallyOptimal`); the mixer is `algo.mixer`.
"""

import dataclasses

from jaxfactor.algos.factorised import Variant, make_factorised, mixer_settings
from jaxfactor.algos.registry import ALGOS
from jaxfactor.algos.weightings import PotentiallyOptimal
from jaxfactor.settings import check_mixer, read, reject_unknown, setting

MIXERS = ("qmix", "vdn", "qplex")


@dataclasses.dataclass(frozen=True)
class PowSettings:
    central_embed_dim: int = setting(low=1)
    central_loss_scale: float = setting(low=0.0)


def make_pow(cfg, spec, inputs):
    check_mixer(cfg, MIXERS)
    reject_unknown(cfg, (PowSettings, PotentiallyOptimal, *mixer_settings(cfg)))
    settings = read(PowSettings, cfg)
    variant = Variant(central_embed_dim=settings.central_embed_dim, central_loss_scale=settings.central_loss_scale)
    return make_factorised(cfg, spec, inputs, variant, weighting=read(PotentiallyOptimal, cfg)).build(cfg.name)


for _mixer in MIXERS:  # the names of the papers' tables; `algo=pow_qmix algo.mixer=vdn` is pow_vdn
    ALGOS.register(f"pow_{_mixer}")(make_pow)
