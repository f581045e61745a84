"""The contracts of an environment package (see rmdt.envs.registry): its evaluator and its dataset recipe.

Both are modules, so the protocols list module-level functions; ``isinstance(module, Evaluator)`` checks
that every name is there (tests also compare the signatures).
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Evaluator(Protocol):
    """How checkpoints are evaluated in one environment (``evaluation.env``)."""

    Settings: type  # dataclass of evaluation.env_args; checked when the run config loads

    def evaluate(self, policy, evaluation, settings, target_return: float, device="cpu", progress: bool = True,
                 periodic: bool = False) -> list[dict]:
        """Rolls ``policy`` out as ``evaluation`` (an EvaluationConfig) and ``settings`` say, conditioned on
        ``target_return``; ``periodic``: the cheaper in-training evaluation. Returns one row per setting."""

    def plot(self, results: list[dict], path, title: str = "") -> None:
        """A PNG of the rows at ``path``."""

    def describe(self, row: dict) -> str:
        """One console line for a row."""

    def scalars(self, results: list[dict]) -> dict[str, float]:
        """The numbers logged to the trackers, by name (unique across target returns)."""

    def default_target(self, settings) -> float | None:
        """The target return used when ``evaluation.target_return`` is null; None: the env has none."""

    def settings_from_data(self, env_args: dict, trajectories) -> dict:
        """``env_args`` completed from what the training data records (its environment, reference
        returns, ...), so the checkpoint alone says how to evaluate; unchanged where the data says nothing."""


@runtime_checkable
class Recipe(Protocol):
    """A dataset builder (``data.recipe: <env name>`` in a run config, ``datasets/<name>.py`` on the command line)."""

    def build(self, *args: Any, root=None, **kwargs: Any) -> str:
        """Writes the dataset once, atomically, under an id that encodes the arguments, and returns that id
        (or path); a dataset already on disk under that id is reused. ``root``: the datasets directory."""

    def main(self, argv=None) -> None:
        """The recipe's command line."""


def no_default_target(settings) -> None:
    """``default_target`` of an environment without one: its configs set ``evaluation.target_return``."""
    return None


def settings_unchanged(env_args: dict, trajectories) -> dict:
    """``settings_from_data`` of an environment whose settings come from the run config alone."""
    return dict(env_args)
