"""Atari 2600 through ale-py: the batched games (env.py), the frame-store recipe, the evaluator and its settings."""
