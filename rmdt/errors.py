"""Errors that name the file or key at fault, shared by the run config and the modules it checks.

A module of its own (it imports nothing), so environment settings and model configs can raise them
without importing the run config.
"""
from __future__ import annotations


class ConfigError(ValueError):
    """A configuration problem; the message names the file or key. ``keys``: the dotted keys at fault,
    so ``load_config`` can say whether the file or a command-line override set them."""

    def __init__(self, message: str, *keys: str):
        super().__init__(message)
        self.keys = keys
