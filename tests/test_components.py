"""Algorithms as compositions (issue 20): a weighting and a bonus reward defined HERE, registered through the
public registries, train on a matrix game without any package file changing; the settings reader's errors."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_cfg

from experiments.matrix_tables import train_matrix_games
from jaxfactor.algos.components import BONUSES, WEIGHTINGS, BonusReward, Weighting
from jaxfactor.algos.factorised import make_factorised
from jaxfactor.algos.registry import ALGOS
from jaxfactor.envs.matrix_games import optimum
from jaxfactor.errors import ConfigError
from jaxfactor.settings import check_mixer, read, reject_unknown, setting

TRACED = {"weighting": 0, "bonus": 0}


@WEIGHTINGS.register("test_greedy_or_under")
@dataclasses.dataclass(frozen=True)
class GreedyOrUnder(Weighting):
    """A rule no paper uses: weight 1 where the stored joint action is greedy OR Q_tot under-estimates y (the union
    of CW's and OW's favoured sets), alpha elsewhere."""

    alpha: float = setting(0.1, low=0.0, high=1.0)

    def weights(self, learner, params, ctx, batch, t_env):
        TRACED["weighting"] += 1
        return jnp.where(ctx.is_greedy_joint | (ctx.q_tot < ctx.y), 1.0, self.alpha)


@BONUSES.register("test_cell_bonus")
@dataclasses.dataclass(frozen=True)
class CellBonus(BonusReward):
    """+size on the transitions of one joint action: a shaping reward that moves the optimum to that cell."""

    size: float = setting(20.0)
    cell: int = setting(4, low=0)
    """Flat index of the joint action (row-major)."""

    def reward(self, batch, carry):
        TRACED["bonus"] += 1
        actions, num_actions = batch.actions[:, :-1], batch.avail.shape[-1]  # [B, T-1, N]
        index = sum(actions[..., i] * num_actions ** (actions.shape[-1] - 1 - i) for i in range(actions.shape[-1]))
        return batch.reward[:, :-1] + self.size * (index == self.cell)


@ALGOS.register("test_ow_vdn")
def make_ow_vdn(cfg, spec, inputs):
    """README's "add your own algorithm" example: VDN trained with OW-QMIX's optimistic weighting."""
    rule = WEIGHTINGS.get("ow")
    reject_unknown(cfg, (rule,))
    check_mixer(cfg, ("vdn",))
    return make_factorised(cfg, spec, inputs, weighting=read(rule, cfg)).build("test_ow_vdn")


M3 = make_cfg("env=matrix_m3").env.params["payoff"]
UNIFORM = ("env=matrix_m3", "algo.eps_start=1", "algo.eps_finish=1", "algo.batch_size=32")
SEEDS = 5


def test_a_weighting_defined_outside_the_package_trains_through_the_registry():
    """M3 under uniform data (the P1 setting of test_weighted_matrix): like CW and OW, the union rule with alpha 0
    recovers the optimum that QMIX's uniform loss misses."""
    cfg = make_cfg("algo=ow_qmix", "algo.weighting=test_greedy_or_under", "algo.alpha=0", *UNIFORM)
    out = train_matrix_games(cfg, [M3], SEEDS, 10_000 // cfg.algo.num_envs)
    assert TRACED["weighting"] > 0  # the registered rule, not a built-in one, weighted the loss
    (weight,) = [v for k, v in out["metrics"].items() if k.endswith("main/weight")]
    assert float(np.min(weight)) < 1.0  # and it left some transitions down-weighted
    ok = (out["greedy"][0] == np.asarray(optimum(M3))).all(axis=1)
    assert ok.sum() >= SEEDS - 1, f"optimum recovered on seeds {np.flatnonzero(ok).tolist()} only"


def test_a_bonus_reward_defined_outside_the_package_trains_through_the_registry():
    """+20 on (B, B) of M3 (payoff 0 there) under uniform data: NM-QMIX's unconstrained mixer learns the shaped
    table, Q_tot(B, B) near 20 and the table's maximum. Measured at this budget on seeds 0-9: 15.1-20.3 with the
    bonus, -2.8-0.0 without it (the unshaped run is left out for CI time)."""
    shaped = make_cfg("algo=nmix", "algo.bonus=test_cell_bonus", *UNIFORM)  # its defaults: +20 on cell 4
    bonused = train_matrix_games(shaped, [M3], SEEDS, 3_000 // shaped.algo.num_envs)["q_tot"][0]
    assert TRACED["bonus"] > 0
    peak = bonused.reshape(SEEDS, -1).argmax(axis=1) == 4
    assert ((bonused[:, 1, 1] > 12) & peak).sum() >= SEEDS - 1, bonused[:, 1, 1].tolist()


def test_an_algorithm_defined_outside_the_package_trains_through_the_registry():
    """The factory above, given a composed config (as a yaml file `name: test_ow_vdn, mixer: vdn, alpha: 0.5`
    would give it): it refuses a key it does not read, and on a game whose optimum VDN can represent ([[6, 0],
    [0, 2]], uniform data) its weighted loss down-weights some transitions and every seed acts on (A, A)."""
    base = make_cfg("algo=vdn", "env=matrix_m0", "algo.eps_start=1", "algo.eps_finish=1", "algo.batch_size=32")
    algo = dataclasses.replace(base.algo, name="test_ow_vdn", extra={"alpha": 0.5})
    cfg = dataclasses.replace(base, algo=algo)
    with pytest.raises(ConfigError, match="algo.central"):
        train_matrix_games(
            dataclasses.replace(cfg, algo=dataclasses.replace(algo, extra={"central": True})), [[[6, 0], [0, 2]]], 1, 1
        )
    out = train_matrix_games(cfg, [[[6, 0], [0, 2]]], 2, 2_000 // cfg.algo.num_envs)
    (weight,) = [v for k, v in out["metrics"].items() if k.endswith("main/weight")]
    assert float(np.min(weight)) < 1.0
    assert (out["greedy"][0] == 0).all(), out["greedy"][0].tolist()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (("algo=ow_qmix", "algo.weighting=nope"), "unknown algo.weighting 'nope'; allowed: cw, ow, pow,"),
        (("algo=nmix", "algo.bonus=nope"), "unknown algo.bonus 'nope'; allowed: rnd"),
        (
            ("algo=nmix", "algo.bonus=test_cell_bonus", "+algo.cell=-1"),
            "algo.cell=-1 is out of range; allowed: [0, inf)",
        ),
        (("algo=s2q", "algo.temperature=0"), "algo.temperature=0.0 is out of range; allowed: (0, inf)"),
        (("algo=s2q", "algo.suppress_floor=abc"), "algo.suppress_floor must be float or null, got 'abc'"),
        (("algo=me_qmix", "algo.opt_layers=3"), "algo.opt_layers=3 is out of range; allowed: [1, 2]"),
        (("algo=pow_qplex", "algo.mixer=qmix"), "algo.adv_hypernet_layers is not a key of algo 'pow_qplex'"),
        (("algo=cw_qmix", "algo.mixer=vdn"), "algo.mixer='vdn' does not fit algo 'cw_qmix'; allowed: qmix"),
    ],
)
def test_settings_errors_name_the_field_and_the_allowed_values(overrides, message):
    from jaxfactor.runner.lanes import build

    with pytest.raises(ConfigError) as e:
        build(make_cfg(*overrides))
    assert message in str(e.value), str(e.value)


def test_the_mixer_is_a_parameter_of_a_family():
    """`algo=s2q algo.mixer=vdn` builds what `algo=s2q_vdn` builds (same parameter shapes and stages)."""
    import jax

    from jaxfactor.runner.lanes import build

    (_, by_key, _), (_, by_name, _) = (
        build(make_cfg(*o, "env=matrix_m3")) for o in (("algo=s2q", "algo.mixer=vdn"), ("algo=s2q_vdn",))
    )
    shapes = [jax.tree.map(lambda x: x.shape, a.init_params(jax.random.key(0))) for a in (by_key, by_name)]
    assert shapes[0] == shapes[1] and [s.name for s in by_key.stages] == [s.name for s in by_name.stages]
