"""Runners: the one device loop (anakin) and its rollout."""
