"""jaxfactor: cooperative multi-agent value factorisation in pure-functional JAX.

Shape legend used across the package: S seeds, E parallel envs, T time slots (episode
limit L plus one bootstrap slot), B sampled episodes, N agents, A actions, H hidden units,
D per-agent observation features, G global-state features.
"""

__version__ = "0.1.0"
