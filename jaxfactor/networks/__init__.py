"""Linen networks: PyTorch-initialised layers, the recurrent agent and the mixers."""
