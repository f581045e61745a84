"""TEMPORARY shim until the environment packages land: ENVS over today's evaluation modules."""
from __future__ import annotations

import importlib

from rmdt.registry import Registry

ENVS: Registry[str] = Registry("environment")
for _name in ("tmaze", "atari", "memory_maze", "gymnasium"):
    ENVS.register(_name, f"rmdt.evaluation.{_name}")


def env_settings_class(env: str):
    return importlib.import_module(ENVS[env]).Settings


def load_recipe(name: str):
    from rmdt.data.recipes import load_recipe as load

    return load(name)
