"""Environments: one package per environment (its env classes, dataset recipe, evaluator and settings),
found by name through ``rmdt.envs.registry.ENVS``. Importing ``rmdt`` registers rmdt's own gymnasium ids."""
