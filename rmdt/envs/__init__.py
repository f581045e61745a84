"""Environments: one package per environment (its env classes, dataset recipe, evaluator and settings),
found by name through ``ENVS`` (rmdt.envs.registry); ``register_env("name", "package.path")`` adds one.
Importing ``rmdt`` registers rmdt's own gymnasium ids."""
from rmdt.envs.registry import ENVS, register_env

__all__ = ["ENVS", "register_env"]
