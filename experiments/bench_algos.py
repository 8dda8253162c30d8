"""Seconds per update of every algorithm against QMIX at the same settings (issue 21 item 7), one run:
one lane, a batch of `--batch` episodes from a behaviour rollout, the learner past its first update (POW's
recogniser takes `pow_steps`, not `pow_first_steps`), the update as the trainer runs it (length buckets on).
Beside each time, the matrix-multiply FLOPs of the same update counted from its jaxpr (scans and the stages'
inner loops multiplied out; XLA's own cost analysis counts a loop body once): where the time ratio follows the
FLOP ratio, what remains is the method's own arithmetic, not repeated work.

    python -m experiments.bench_algos [--env predator_prey_small] [--batch 32] [--repeats 5] [--algos qmix pow_qmix ...]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import jax.numpy as jnp
from jax.extend import core

from experiments.bench_padding import timed
from experiments.common import make_cfg, save_table
from jaxfactor import buffers
from jaxfactor.runner.lanes import build, init_lanes
from jaxfactor.runner.learn import bucket_index, bucket_lengths, over_lanes, update_on_real_slots
from jaxfactor.runner.rollout import rollout

ALGOS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "configs" / "algo").glob("[!_]*.yaml"))


def _inner_jaxprs(eqn) -> Iterator[core.Jaxpr]:
    for value in eqn.params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, core.Jaxpr):
                yield item


def jaxpr_matmul_flops(jaxpr: core.Jaxpr, while_trips: list[int]) -> float:
    """2 m n k summed over every dot_general, times each enclosing scan's length; a `while` runs the next count of
    `while_trips` (consumed in program order), a `cond` its costliest branch."""
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (_, rhs_contract), (_, rhs_batch) = eqn.params["dimension_numbers"]
            lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
            rhs_free = math.prod(d for i, d in enumerate(rhs) if i not in rhs_contract and i not in rhs_batch)
            total += 2 * math.prod(lhs) * rhs_free
        elif name == "scan":
            total += eqn.params["length"] * jaxpr_matmul_flops(eqn.params["jaxpr"].jaxpr, while_trips)
        elif name == "while":
            if not while_trips:
                raise ValueError("a while loop without a known trip count")
            trips = while_trips.pop(0)
            total += trips * jaxpr_matmul_flops(eqn.params["body_jaxpr"].jaxpr, while_trips)
        elif name == "cond":
            total += max(jaxpr_matmul_flops(branch.jaxpr, list(while_trips)) for branch in eqn.params["branches"])
        else:
            total += sum(jaxpr_matmul_flops(inner, while_trips) for inner in _inner_jaxprs(eqn))
    return total


def matmul_flops(fn: Callable, *args, while_trips: tuple[int, ...] = ()) -> float:
    """Matrix-multiply FLOPs of one call of `fn` (forward and, inside it, every gradient)."""
    return jaxpr_matmul_flops(jax.make_jaxpr(fn)(*args).jaxpr, list(while_trips))


def bucket_length(batch, count: int) -> int:
    """The compiled length `update_on_real_slots` trains this batch [lanes, B, T, ...] at."""
    lengths = bucket_lengths(batch.filled.shape[-1], count)
    return lengths[int(bucket_index(lengths, jnp.max(jnp.sum(batch.filled, axis=-1))))]


def seconds_per_update(algo_name: str, env_name: str, batch: int, repeats: int) -> tuple[float, float]:
    """(median s per update, matmul FLOPs per update) of one lane."""
    cfg = make_cfg(
        f"algo={algo_name}",
        f"env={env_name}",
        "num_seeds=1",
        f"algo.batch_size={batch}",
        f"algo.buffer_size={batch}",
        f"algo.num_envs={batch}",
    )
    env, algo, _ = build(cfg)
    runner = init_lanes(cfg, algo)

    def sample(r):
        episodes, _ = rollout(algo, env, algo.behaviour(r.learner), r.key, batch, greedy=False)
        return buffers.sample(buffers.add(r.buffer, episodes, jnp.ones((batch,), bool)), r.key, batch)

    sampled = jax.jit(jax.vmap(sample))(runner)
    keys = jax.random.split(jax.random.key(0), 1)
    update = jax.jit(
        over_lanes(lambda lr, b, k: update_on_real_slots(algo, lr, b, k, cfg.algo.length_buckets, "lanes"))
    )
    learner, _ = update(runner.learner, sampled, keys)  # past the first update (and compiled)
    seconds = timed(update, learner, sampled, keys, repeats=repeats)[1]
    # FLOPs of the update at the length bucket this batch trains at, inner stage loops at their later count.
    one = jax.tree.map(lambda x: x[0], (learner, sampled, keys))
    length = bucket_length(sampled, cfg.algo.length_buckets)
    cut = jax.tree.map(lambda x: x[:, :length], one[1])
    inner = tuple(stage.steps - 1 for stage in algo.stages if stage.steps > 1 or stage.first_steps not in (None, 1))
    flops = matmul_flops(lambda lr, b, k: algo.update(lr, b, k), one[0], cut, one[2], while_trips=inner)
    return seconds, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="predator_prey_small")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--algos", nargs="+", default=ALGOS, choices=ALGOS)
    args = parser.parse_args()
    names = ["qmix"] + [a for a in args.algos if a != "qmix"]
    rows, flops = {}, {}
    for name in names:
        rows[name], flops[name] = seconds_per_update(name, args.env, args.batch, args.repeats)
        print(
            f"{name}: {rows[name] * 1e3:.1f} ms per update ({rows[name] / rows['qmix']:.1f}x QMIX), "
            f"{flops[name] / 1e9:.2f} GFLOP ({flops[name] / flops['qmix']:.1f}x)",
            flush=True,
        )
    device = jax.devices()[0]
    lines = [
        f"{args.env}, one lane, batch {args.batch}; device {device.platform}, jax {jax.__version__}; "
        f"medians of {args.repeats}",
        "",
        "| algo | ms per update | x QMIX | matmul GFLOP per update | x QMIX | GFLOP/s |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {n} | {t * 1e3:.1f} | {t / rows['qmix']:.1f} | {flops[n] / 1e9:.2f} | {flops[n] / flops['qmix']:.1f} "
        f"| {flops[n] / t / 1e9:.0f} |"
        for n, t in rows.items()
    ]
    save_table(f"bench_algos_{args.env}", "\n".join(lines))


if __name__ == "__main__":
    main()
