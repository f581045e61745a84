"""ENVS: every environment rmdt knows, by name, as a package imported only when one of its parts is used.

An environment package (``rmdt/envs/<name>/`` or one of your own) holds, as ``rmdt.envs.protocol`` types them:

- ``settings.py``: ``Settings``, the dataclass of ``evaluation.env_args``; it imports neither torch nor the
  environment's own packages, so the run config checks settings cheaply;
- ``evaluator.py``: the functions of the ``Evaluator`` protocol, and ``Settings``;
- ``recipe.py`` (optional): the dataset recipe, ``build(..., root=None) -> dataset id`` and ``main(argv)``,
  which ``data.recipe: <name>`` and ``datasets/<name>.py`` run;
- ``env.py`` (optional): the environment classes.

A package evaluated by another's evaluator says so in its ``__init__.py``: ``EVALUATOR = "rmdt.envs.gymnasium"``
(POPGym, MiniGrid and the double pendulum are gymnasium ids). A small environment may also be one module that
defines everything (``Settings``, the evaluator's functions and, for a recipe, ``build`` and ``main``).

The names are the values of ``evaluation.env`` and ``data.recipe`` in run configs, so a name, once
released, stays. Register your own with ``register_env("name", "my_package.my_env")`` (``train.py
--import my_package`` runs that registration).
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from rmdt.registry import Registry, UnknownName
from rmdt.suggest import did_you_mean


class UnknownEnv(UnknownName):
    """An environment name, or a part of one, that the registry does not have."""


class EnvRegistry(Registry[str]):
    """Environment name -> dotted package path; the parts are imported on first use (see the module docstring)."""

    unknown = UnknownEnv

    def __init__(self) -> None:
        super().__init__("environment")

    def package(self, name: str) -> str:
        """The dotted package path of ``name``; UnknownEnv (with the closest name) if it is not registered."""
        return self[name]

    def settings(self, name: str) -> type:
        """The ``Settings`` dataclass of ``name``'s ``evaluation.env_args`` (its settings module only)."""
        return _part(self._evaluated_by(name), "settings", name).Settings

    def evaluator(self, name: str) -> ModuleType:
        """The evaluator module of ``name`` (an ``rmdt.envs.protocol.Evaluator``)."""
        return _part(self._evaluated_by(name), "evaluator", name)

    def has_recipe(self, name: str) -> bool:
        return name in self.entries and _find(self.entries[name], "recipe", "build") is not None

    def recipe_names(self) -> list[str]:
        """The environments with a dataset recipe (the values ``data.recipe`` takes)."""
        return [name for name in self.entries if self.has_recipe(name)]

    def recipe(self, name: str) -> ModuleType:
        """The dataset recipe of ``name`` (an ``rmdt.envs.protocol.Recipe``); UnknownEnv if there is none."""
        if not self.has_recipe(name):
            known = self.recipe_names()
            if name in self.entries:
                raise UnknownEnv(f"environment {name!r} has no dataset recipe{did_you_mean(name, known)}")
            raise UnknownEnv(f"unknown dataset recipe {name!r}{did_you_mean(name, known)}")
        return _part(self.entries[name], "recipe", name)

    def _evaluated_by(self, name: str) -> str:
        """The package whose settings and evaluator ``name`` uses: its own, or the one its ``EVALUATOR`` names."""
        package = self.package(name)
        return getattr(importlib.import_module(package), "EVALUATOR", package)


def _find(package: str, part: str, attribute: str) -> str | None:
    """The module holding ``part`` of ``package``: ``package.part``, or ``package`` itself when it is a single
    module that defines ``attribute``; None when there is no such part."""
    module = importlib.import_module(package)
    if not hasattr(module, "__path__"):
        return package if hasattr(module, attribute) else None
    return f"{package}.{part}" if importlib.util.find_spec(f"{package}.{part}") is not None else None


def _part(package: str, part: str, name: str) -> ModuleType:
    found = _find(package, part, {"settings": "Settings", "evaluator": "evaluate", "recipe": "build"}[part])
    if found is None:
        raise UnknownEnv(f"environment {name!r}: {package} has no {part} module")
    return importlib.import_module(found)


ENVS = EnvRegistry()
register_env = ENVS.register
env_settings_class = ENVS.settings  # the lookups by name, for callers that import functions
env_evaluator = ENVS.evaluator
load_recipe = ENVS.recipe

# The built-in environments. popgym, minigrid, double_pendulum and d4rl_mujoco are recipes of gymnasium ids,
# evaluated by the gymnasium evaluator (``evaluation.env: gymnasium``, their packages say so).
for _name in ("tmaze", "atari", "memory_maze", "gymnasium", "popgym", "minigrid", "double_pendulum", "d4rl_mujoco"):
    register_env(_name, f"rmdt.envs.{_name}")

# Every gymnasium id rmdt defines; entry points are strings, so registering imports no environment.
GYMNASIUM_IDS = {
    "rmdt/TMaze-v0": dict(entry_point="rmdt.envs.tmaze.env:TMazeEnv",
                          vector_entry_point="rmdt.envs.tmaze.env:TMazeVectorEnv"),
    # the maze sizes of rmdt.envs.memory_maze.settings.NATIVE_STEPS; each episode ends at the size's native length
    **{f"rmdt/MemoryMaze-{n}x{n}-v0": dict(entry_point="rmdt.envs.memory_maze.env:MemoryMazeEnv",
                                           kwargs={"maze_size": n}) for n in (9, 11, 13, 15)},
}


def register_gymnasium_envs() -> None:
    """Registers ``GYMNASIUM_IDS`` with gymnasium (``import rmdt`` does), once."""
    import gymnasium as gym

    for env_id, spec in GYMNASIUM_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, **spec)
