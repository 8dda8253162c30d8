"""Idealised learning dynamics behind the matrix-game claims N1/N2 ([X-NM]) and E1 ([ME]) (ALGORITHMS.md §11.1).

Strips the trainer down to the mechanism the papers argue from, to tell a wrong implementation from a claim
that does not hold: tabular utilities q_i (free parameters, initialised like the agent network's outputs,
N(0, 0.09^2)), the real jaxfactor mixer and OPT modules at the game's constant state, and the EXACT expected
loss over all A^2 joint actions under the behaviour distribution mu (no sampling, replay or recurrent net),
Adam as in the trainer. One-step games are terminal, so every target is the payoff R(u).

  nmix-egreedy    NM mixer (§8.1), mu = epsilon-greedy on argmax q_i (1 -> eps_end), held fixed in each
                  gradient (what a Q-learning implementation does)
  nmix-softmax    NM mixer, mu = prod_i softmax(q_i / tau) DIFFERENTIATED: the coupled gradient flow that
                  [X-NM] Thms 2-3 analyse ("policy gradient term" + "value gradient term")
  qmix-egreedy    monotone QMIX mixer, epsilon-greedy (the N1' / N2' / E1' baseline)
  me_qmix         QMIX mixer + two-layer OPT (§9.2, d1 = 32, the matrix-game setting) + temperature (§9.4,
                  exact entropy): mu = prod_i softmax(OPT_i(q_i)/alpha), the critic, OPT and log-alpha losses of
                  Eqs. 8, 9, 11 stepped in the §9.6 order

Two knobs put the trainer's machinery back one piece at a time: `--utilities agent` takes the utilities from
jaxfactor's recurrent agent network (shared by both agents) instead of free parameters, and `--sample-batch B`
replaces the exact expectation by B joint actions drawn from mu per update (replay stays out).

    python -m experiments.matrix_dynamics [--lanes 256] [--updates 6250]
    python -m experiments.matrix_dynamics --utilities agent --lanes 64 --sample-batch 128
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments.common import make_cfg, save_table
from experiments.nonmonotonic_matrix import M1, M4, M5
from jaxfactor.algos import make_algo
from jaxfactor.algos.base import adam_clipped
from jaxfactor.envs import make_env
from jaxfactor.networks.entropy import OrderPreservingTransform
from jaxfactor.networks.mixers import MixerInput, make_mixer
from jaxfactor.rl.policies import linear_epsilon

STATE = jnp.array([1.0, 0.0])  # the matrix game's state before acting (§10.1)
MODES = ("nmix-egreedy", "nmix-softmax", "qmix-egreedy", "me_qmix")
UTILITY_INIT_STD = 0.09  # measured: std of the agent network's initial utilities on matrix_m5, 64 seeds


def joint_inputs(q: jax.Array) -> jax.Array:
    """q [2, A] -> chosen-action utilities of every joint action [A, A, 2]."""
    A = q.shape[1]
    return jnp.stack([jnp.broadcast_to(q[0][:, None], (A, A)), jnp.broadcast_to(q[1][None, :], (A, A))], -1)


def product(p: jax.Array) -> jax.Array:
    """Per-agent distributions [2, A] -> joint distribution [A, A]."""
    return p[0][:, None] * p[1][None, :]


def epsilon_greedy_probs(q: jax.Array, eps: jax.Array) -> jax.Array:
    """The distribution that jaxfactor.rl.policies.epsilon_greedy samples from, [2, A] (all actions available)."""
    A = q.shape[1]
    return (1 - eps) * jax.nn.one_hot(jnp.argmax(q, -1), A) + eps / A


def tabular_utilities(num_actions: int) -> tuple[Callable, Callable]:
    """Utilities as free parameters [2, A], N(0, UTILITY_INIT_STD^2)."""
    return (lambda key: UTILITY_INIT_STD * jax.random.normal(key, (2, num_actions))), (lambda q: q)


def agent_utilities() -> tuple[Callable, Callable]:
    """Utilities from jaxfactor's recurrent agent network (shared by both agents, agent id in its input) on the
    matrix game's first observation: its initialisation and parameterisation, nothing else of the trainer."""
    cfg = make_cfg("algo=qmix", "env=matrix_m4")  # every algorithm here uses the same agent network
    env = make_env(cfg.env.kind, cfg.env.params)
    algo = make_algo(cfg.algo, env.spec, cfg.env.agent_inputs)
    first = jax.tree.map(lambda x: x[None], env.reset(jax.random.key(0))[1])  # the same observation in every game
    step_utilities = algo.extras["step_utilities"]
    return (
        (lambda key: algo.init_params(key)["agent"]),
        (lambda agent: step_utilities(agent, algo.initial_actor_state(1), first)[1][0]),
    )


def run_lane(
    key: jax.Array,
    payoff: jax.Array,
    mode: str,
    utilities: tuple[Callable, Callable],
    updates: int,
    eps_end: float,
    eps_anneal: int,
    tau: float,
    lr: float,
    alpha_lr: float,
    target_entropy: float,
    sample_batch: int = 0,
) -> dict:
    k_q, k_mix, k_opt = jax.random.split(key, 3)
    k_steps = jax.random.fold_in(key, 1)  # minibatch draws (--sample-batch)
    A = payoff.shape[0]
    init_utilities, U = utilities
    mixer = make_mixer("nmix" if mode.startswith("nmix") else "qmix", embed_dim=32, hypernet_dim=64)
    opt_net = OrderPreservingTransform(num_agents=2, layers=2, embed_dim=32, hypernet_dim=64)
    params = {"agent": init_utilities(k_q), "mixer": mixer.init(k_mix, MixerInput(qs=jnp.zeros((2,)), state=STATE))}
    if mode == "me_qmix":
        params |= {"opt": opt_net.init(k_opt, jnp.zeros((2, A)), STATE), "log_alpha": jnp.zeros(())}
    loss_scale = 1.0 if mode.startswith("nmix") else 0.5  # Eq. 26 has no 1/2; QMIX's nq_learner and Eq. 8 do
    q_tot = lambda p, q: mixer.apply(p, MixerInput(qs=joint_inputs(q), state=jnp.broadcast_to(STATE, (A, A, 2))))  # noqa: E731

    def policy(p, q):  # §9.3, [2, A]
        return jax.nn.softmax(opt_net.apply(p["opt"], q, STATE) / jnp.exp(p["log_alpha"]), -1)

    def critic_loss(p, t, key):
        if mode == "nmix-softmax":
            mu = product(jax.nn.softmax(U(p["agent"]) / tau, -1))  # differentiated: the coupled flow
        elif mode == "me_qmix":
            mu = jax.lax.stop_gradient(product(policy(p, U(p["agent"]))))
        else:
            eps = linear_epsilon(t, 1.0, eps_end, eps_anneal)
            mu = product(epsilon_greedy_probs(jax.lax.stop_gradient(U(p["agent"])), eps))
        if sample_batch:  # a minibatch of joint actions drawn from mu instead of the exact expectation
            draws = jax.random.categorical(key, jnp.log(jax.lax.stop_gradient(mu)).ravel(), shape=(sample_batch,))
            mu = jnp.bincount(draws, length=A * A).reshape(A, A) / sample_batch
        return loss_scale * jnp.sum(mu * (payoff - q_tot(p["mixer"], U(p["agent"]))) ** 2), mu

    def opt_loss(p_opt, p, mu):  # Eq. 9 in expectation under mu
        q = jax.lax.stop_gradient(U(p["agent"]))
        opt = opt_net.apply(p_opt, q, STATE)
        summed = opt[0][:, None] + opt[1][None, :]
        return jnp.sum(mu * (summed - jax.lax.stop_gradient(q_tot(p["mixer"], q))) ** 2)

    def alpha_loss(log_alpha, p):  # Eq. 11 with the exact joint entropy (§9.4)
        pi = jax.lax.stop_gradient(policy(p, U(p["agent"])))
        entropy = -jnp.sum(pi * jnp.log(pi + 1e-30))
        return jnp.exp(log_alpha) * (entropy - target_entropy)

    adam, adam_alpha = adam_clipped(10.0)(lr), adam_clipped(10.0)(alpha_lr)  # the trainer's optimiser (§1.6)
    critic_keys = ("agent", "mixer")
    states = {"critic": adam.init({k: params[k] for k in critic_keys})}
    if mode == "me_qmix":
        states |= {"opt": adam.init(params["opt"]), "alpha": adam_alpha.init(params["log_alpha"])}

    def step(carry, xs):
        t, key = xs
        p, s = carry
        critic = {k: p[k] for k in critic_keys}
        grads, mu = jax.grad(lambda c: critic_loss({**p, **c}, t, key), has_aux=True)(critic)
        upd, s_c = adam.update(grads, s["critic"])
        p = {**p, **optax.apply_updates(critic, upd)}
        s = {**s, "critic": s_c}
        if mode == "me_qmix":  # §9.6: critic, then OPT with the fresh critic, then the temperature
            g = jax.grad(opt_loss)(p["opt"], p, mu)
            upd, s_o = adam.update(g, s["opt"])
            p = {**p, "opt": optax.apply_updates(p["opt"], upd)}
            g = jax.grad(alpha_loss)(p["log_alpha"], p)
            upd, s_a = adam_alpha.update(g, s["alpha"])
            p = {**p, "log_alpha": optax.apply_updates(p["log_alpha"], upd)}
            s = {**s, "opt": s_o, "alpha": s_a}
        return (p, s), None

    params, _ = jax.lax.scan(step, (params, states), (jnp.arange(updates), jax.random.split(k_steps, updates)))[0]
    q = U(params["agent"])
    table = q_tot(params["mixer"], q)
    out = {
        "greedy": jnp.argmax(q, -1),
        "q_tot": table,
        "igm": jnp.argmax(table.ravel()) == jnp.ravel_multi_index(jnp.argmax(q, -1), (A, A), mode="clip"),
    }
    if mode == "me_qmix":
        out |= {"policy": policy(params, q), "alpha": jnp.exp(params["log_alpha"])}
    return out


def summarise(mode: str, game: str, payoff: np.ndarray, out: dict) -> str:
    lanes = out["greedy"].shape[0]
    on_opt = np.array([payoff[tuple(g)] == payoff.max() for g in out["greedy"]])
    err = np.abs(out["q_tot"] - payoff).reshape(lanes, -1).max(-1)
    greedy_counts = {}
    for g in out["greedy"]:
        label = "".join("ABC"[int(a)] for a in g)
        greedy_counts[label] = greedy_counts.get(label, 0) + 1
    common = ", ".join(f"{k} {v}" for k, v in sorted(greedy_counts.items(), key=lambda kv: -kv[1])[:4])
    row = (
        f"| {mode} | {game} | {on_opt.sum()}/{lanes} | {int(out['igm'].sum())}/{lanes} | "
        f"{(err <= 0.5).sum()}/{lanes} | "
        f"{(on_opt & (err <= 0.5)).sum()}/{lanes} | {common} |"
    )
    if "policy" in out:
        p_a = out["policy"][:, :, 0]
        both = int(((p_a >= 0.5).all(-1)).sum())
        row += f" P(A) ≥ 0.5 for both agents on {both}/{lanes}; median α {np.median(out['alpha']):.3g}"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lanes", type=int, default=256, help="random initialisations per game and mode")
    parser.add_argument("--updates", type=int, default=6250, help="Adam steps (50k env steps / 8 envs)")
    parser.add_argument("--me-updates", type=int, default=1250, help="Adam steps of me_qmix (10k env steps / 8)")
    parser.add_argument("--eps-end", type=float, default=0.05)
    parser.add_argument("--eps-anneal", type=int, default=2500, help="updates of the 1 -> eps-end anneal (20k / 8)")
    parser.add_argument("--tau", type=float, default=0.1, help="softmax temperature of nmix-softmax")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--alpha-lr", type=float, default=0.3)
    parser.add_argument("--target-entropy", type=float, default=0.48, help="joint target entropy (0.24 n)")
    parser.add_argument(
        "--sample-batch",
        type=int,
        default=0,
        help="joint actions sampled from mu per update (0: the exact expectation); not for nmix-softmax",
    )
    parser.add_argument(
        "--utilities",
        choices=("tabular", "agent"),
        default="tabular",
        help="free utilities, or jaxfactor's recurrent agent network on the game's observation",
    )
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    args = parser.parse_args()
    if args.sample_batch and "nmix-softmax" in args.modes:
        parser.error(
            "--sample-batch: nmix-softmax differentiates through mu, a sampled minibatch has no gradient; "
            "allowed modes with it: nmix-egreedy, qmix-egreedy, me_qmix"
        )
    lines = [
        "| dynamics | game | greedy on the optimum | IGM (argmax Q_tot = greedy) | table within 0.5 | both | "
        "most common greedy joint actions |",
        "|---|---|---|---|---|---|---|",
    ]
    games = {"M4": M4, "M5": M5, "M1": M1}
    utilities = tabular_utilities(3) if args.utilities == "tabular" else agent_utilities()
    for mode in args.modes:
        for game in ("M1",) if mode == "me_qmix" else ("M4", "M5", "M1") if mode == "qmix-egreedy" else ("M4", "M5"):
            payoff = np.asarray(games[game], np.float32)
            updates = args.me_updates if mode == "me_qmix" else args.updates
            lane = lambda key: run_lane(
                key,
                jnp.asarray(payoff),
                mode,
                utilities,
                updates,  # noqa: E731
                args.eps_end,
                args.eps_anneal,
                args.tau,
                args.lr,
                args.alpha_lr,
                args.target_entropy,
                args.sample_batch,
            )
            t0 = time.perf_counter()
            out = jax.device_get(jax.jit(jax.vmap(lane))(jax.random.split(jax.random.key(0), args.lanes)))
            lines.append(summarise(mode, game, payoff, {k: np.asarray(v) for k, v in out.items()}))
            print(lines[-1], f"({time.perf_counter() - t0:.0f}s)", flush=True)
    save_table("matrix_dynamics", "\n".join(lines))


if __name__ == "__main__":
    main()
