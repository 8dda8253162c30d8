"""The segment layout (runner.layout=segments, JaxMARL's qmix_rnn.py): rows of a fixed number of env steps in which
episodes restart; the learner resets its recurrent state at each episode start and cuts its targets there."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_host_loop import ALGO_YAMLS, countdown_batch, stage_gradients

from jaxfactor.rl.targets import td_lambda_targets
from jaxfactor.structs import Episodes

IN_CI = ("qmix", "s2q")  # the factorised unroll (every algorithm but S2Q) and S2Q's; all 15 with EXTENDED


def test_td_lambda_targets_stop_at_a_terminal_inside_the_row_and_bootstrap_at_its_end():
    # ALGORITHMS.md §1.5 on one row holding episode A (t = 0, 1, terminal at 1) and the start of B (t = 2, 3, cut
    # by the row's end). lambda = 0.5, gamma = 0.9, so lambda*gamma = (1 - lambda)*gamma = 0.45:
    #   G_3 = 0.45 * Q_4 + 4 + 0.45 * Q_4 = 4 + 0.9 * 50 = 49       (the row's end: G_4 is Q_4)
    #   G_2 = 0.45 * G_3 + 3 + 0.45 * Q_3 = 22.05 + 3 + 18 = 43.05
    #   G_1 = 0.45 * 0 + 2 + 0 = 2                                     (terminal: nothing of B flows back into A)
    #   G_0 = 0.45 * G_1 + 1 + 0.45 * Q_1 = 0.9 + 1 + 9 = 10.9
    y = td_lambda_targets(
        jnp.array([[1.0, 2.0, 3.0, 4.0]]),
        jnp.array([[0, 1, 0, 0]], bool),
        jnp.ones((1, 4)),
        jnp.array([[10.0, 20.0, 30.0, 40.0, 50.0]]),
        0.9,
        0.5,
    )
    np.testing.assert_allclose(y, [[10.9, 2.0, 43.05, 49.0]], rtol=1e-6)


def test_a_step_into_a_new_episode_is_learned_only_when_it_terminated():
    # Slot 2 starts an episode after a termination (transition 1 is learned, its target needs no next observation);
    # slot 4 starts one after the time limit (transition 3's final observation was never stored: not learned).
    start = jnp.array([[1, 0, 1, 0, 1, 0]], bool)
    terminal = jnp.array([[0, 1, 0, 0, 0, 0]], bool)
    ones = jnp.ones((1, 6), bool)
    row = Episodes(
        obs=None, state=None, avail=None, actions=None, reward=None, terminal=terminal, filled=ones, start=start
    )
    np.testing.assert_array_equal(row.mask, [[1, 1, 1, 0, 1]])
    assert row.replace(start=None).mask.tolist() == [[1.0] * 5]  # one episode per row: every filled next slot


def as_segments(batch: Episodes) -> Episodes:
    """One row per lane holding the lane's terminated episodes back to back (each without its bootstrap slot, as
    the segment rollout stores them: the next slot is the next episode's first), the last one with its bootstrap
    slot as the row's final slot."""
    filled = np.asarray(batch.filled)
    assert np.asarray(batch.terminal).sum(-1).min() == 1, "every episode must terminate"
    rows = []
    for lane in range(filled.shape[0]):
        lengths = filled[lane].sum(-1) - 1  # real steps per episode
        last = len(lengths) - 1
        pieces = [jax.tree.map(lambda x: x[lane, e, : n + (e == last)], batch) for e, n in enumerate(lengths)]
        row = jax.tree.map(lambda *xs: jnp.concatenate(xs), *pieces)
        starts = np.zeros(int(lengths.sum()) + 1, bool)
        starts[np.cumsum(lengths)[:-1]] = True
        starts[0] = True
        rows.append(row.replace(start=jnp.asarray(starts)))
    slots = max(row.filled.shape[0] for row in rows)  # lanes' rows differ in length: pad as the episode layout does

    def pad(row):
        extra = slots - row.filled.shape[0]
        row = jax.tree.map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)]), row)
        unfilled = jnp.arange(slots) >= slots - extra
        return row.replace(filled=row.filled & ~unfilled, start=row.start & ~unfilled)

    return jax.tree.map(lambda *xs: jnp.stack(xs)[:, None], *map(pad, rows))  # [lanes, 1 row, slots]


@pytest.mark.parametrize("name", [n if n in IN_CI else pytest.param(n, marks=pytest.mark.extended) for n in ALGO_YAMLS])
def test_learning_on_episodes_back_to_back_in_one_segment_equals_learning_on_them_one_per_row(name):
    # The learner restarts its recurrent state and previous action at every `start` and its TD(lambda) targets at
    # every terminal: the same transitions in one row or in eight give the same losses and gradients.
    algo, learner, batch = countdown_batch(name)
    segments = as_segments(batch)
    assert segments.start.sum() == 2 * 8 and segments.filled.shape[-1] < 8 * 4
    keys = jax.random.split(jax.random.key(2), 2)
    grads = jax.jit(jax.vmap(functools.partial(stage_gradients, algo)))
    one_per_row, back_to_back = grads(learner, batch, keys), grads(learner, segments, keys)
    for a, b in zip(jax.tree.leaves(one_per_row), jax.tree.leaves(back_to_back)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # and without restarting, the recurrent state would carry one episode into the next
    carried = grads(learner, segments.replace(start=segments.start.at[..., 1:].set(False)), keys)
    assert not all(
        np.allclose(a, b, rtol=1e-4, atol=1e-6) for a, b in zip(jax.tree.leaves(one_per_row), jax.tree.leaves(carried))
    )


SMAX_SEGMENTS = (
    "algo=qmix",
    "env=smax_3m",
    "num_seeds=2",
    "runner.layout=segments",
    "runner.segment_length=64",
    "algo.length_buckets=1",
    "algo.batch_size=32",
    "algo.target_update_episodes=80",
    "algo.eps_anneal_steps=20000",
    "log_every_steps=8192",
    "eval_every_steps=40000",
    "progress=false",
)


@pytest.mark.slow
def test_the_segment_layout_trains_qmix_on_smax_3m_to_win_where_the_untrained_policy_never_does(tmp_path):
    from conftest import make_cfg

    from experiments.learning import untrained_then_trained

    cfg = make_cfg(*SMAX_SEGMENTS, "total_timesteps=32768", run_dir=str(tmp_path / "run"))
    report = untrained_then_trained(cfg)
    assert report["untrained"]["win_rate"] == [0.0, 0.0]
    assert report["steps_per_seed"] == 32768  # segments: exactly 8 envs x 64 steps per update, 64 updates
    trained = report["trained"]["win_rate"]
    # measured on 8 seeds (4 runs): 0.25-0.69, mean of a pair 0.30-0.56; untrained 0 on every one
    assert min(trained) > 0.1 and np.mean(trained) > 0.2, trained  # greedy, 32 episodes per seed


def test_a_segments_run_resumed_from_its_checkpoint_ends_bit_identical_to_the_uninterrupted_run(tmp_path):
    """The segment layout through run(): stopped after half its chunks and resumed, every checkpointed leaf
    (parameters, optimiser states, replay segments, keys) and every logged per-seed metric equals the run that
    never stopped (the runner holds no env state between updates: each update plays from resets)."""
    import json

    from conftest import make_cfg

    from jaxfactor.checkpoint import Checkpointer
    from jaxfactor.runner.lanes import setup
    from jaxfactor.runner.loop import Callback, restore_lanes, run

    class StopAtHalf(Callback):
        def on_chunk(self, chunk, record):
            return chunk >= 2  # the run still saves its checkpoint there

    common = (
        "algo=qmix",
        "env=predator_prey_small",
        "num_seeds=2",
        "runner.layout=segments",
        "runner.segment_length=16",
        "algo.num_envs=4",
        "algo.batch_size=4",
        "algo.buffer_size=16",
        "algo.agent_hidden_dim=16",
        "algo.mixing_embed_dim=8",
        "algo.hypernet_embed_dim=16",
        "algo.target_update_episodes=8",
        "log_every_steps=256",
        "eval_every_steps=512",
        "checkpoint.every_steps=256",
        "env.test_episodes=2",
        "progress=false",
    )
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    reference = run(make_cfg(*common, "total_timesteps=1024", run_dir=str(whole)))
    # One program for all three runs (the budget is part of it): stopped by a callback, not a smaller budget.
    run(make_cfg(*common, "total_timesteps=1024", run_dir=str(stopped)), callbacks=[StopAtHalf()])
    resumed = run(make_cfg(*common, "total_timesteps=1024", f"resume={stopped}", run_dir=str(stopped)))
    assert resumed["final"] == reference["final"] and resumed["chunks"] == reference["chunks"] == 4

    def lines(run_dir):
        return [json.loads(line)["per_seed"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]

    assert lines(stopped) == lines(whole)

    def final_state(run_dir):
        ckpt = Checkpointer(run_dir, 2, True)
        state, _ = restore_lanes(ckpt, setup(make_cfg(*common, "total_timesteps=1024", run_dir=str(run_dir))))
        ckpt.close()
        return [
            np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(state)
        ]

    for a, b in zip(final_state(whole), final_state(stopped), strict=True):
        np.testing.assert_array_equal(a, b)
