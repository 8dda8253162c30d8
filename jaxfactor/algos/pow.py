"""POW (ALGORITHMS.md §6): potentially-optimal joint actions weighting on QMIX, VDN or QPLEX.

Per batch (§6.6, code order): N_r Adam steps of the recognition module Q_r on L_r (20 on the first
update, 10 after; its own optimiser, clipping over its own parameters, §12 item 16); then weights
w = 1 on P(s) = {u : |Q_r - V_r| < eps_r}, alpha = 0 outside (unweighted during the warm-up);
then one step on L_tot + L_* (factorised + central, E_c = 64), both with the 1/2 factor.
"""

import functools

from jaxfactor.algos.factorised import Variant, make_factorised
from jaxfactor.algos.registry import ALGOS, check_mixer, read_extra

SCHEMA = {"central_embed_dim": (int, 1, None), "alpha": (float, 0.0, 1.0), "central_loss_scale": (float, 0.0, None),
          "pow_tolerance": (float, 0.0, None), "pow_steps": (int, 1, None), "pow_first_steps": (int, 1, None),
          "pow_warmup_steps": (int, 0, None)}


def make_pow(cfg, env_cfg, spec, *, mixer: str):
    schema = {**SCHEMA, "adv_hypernet_layers": (int, 2, None)} if mixer == "qplex" else SCHEMA
    extra = read_extra(cfg, schema)
    check_mixer(cfg, (mixer,))
    variant = Variant(central_embed_dim=extra["central_embed_dim"], weighting="pow", alpha=extra["alpha"],
                      central_loss_scale=extra["central_loss_scale"], pow_tolerance=extra["pow_tolerance"],
                      pow_steps=extra["pow_steps"], pow_first_steps=extra["pow_first_steps"],
                      pow_warmup_steps=extra["pow_warmup_steps"])
    return make_factorised(cfg, env_cfg, spec, variant, adv_layers=extra.get("adv_hypernet_layers", 2)).build(cfg.name)


for _mixer in ("qmix", "vdn", "qplex"):
    ALGOS.register(f"pow_{_mixer}")(functools.partial(make_pow, mixer=_mixer))
