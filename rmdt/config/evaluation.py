"""The run config's evaluation section: settings every environment shares, and ``env_args``, the
typed ``Settings`` of the chosen environment (rmdt.envs), checked against that environment only.

Checkpoints keep this section; ``evaluate.py KEY=VALUE`` changes it through ``evaluation_overrides``.
"""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

import yaml

from rmdt.config import upgrade
from rmdt.envs.registry import ENVS, env_settings_class
from rmdt.errors import ConfigError
from rmdt.suggest import did_you_mean
from rmdt.typed import build


@dataclass
class EvaluationConfig:
    env: str | None = None  # environment to evaluate in: a name registered in rmdt.envs (required)
    episodes: int = 100  # episodes per evaluated setting (e.g. per T-Maze corridor length)
    num_envs: int | None = None  # environments stepped at once (null: all episodes at once)
    seed: int = 12345  # evaluation seed (unseen by training)
    target_return: float | list | None = 1.0  # return-to-go at t=0 (before scaling): a number, a list of numbers
    #                   (each evaluated, reported side by side) or null: the env's default (Atari: the DT paper's)
    sample_actions: bool = False  # sample actions from the policy (seeded by `seed`) instead of the most likely
    periodic_episodes: int | None = None  # episodes per setting every training.eval_every steps (null: episodes)
    env_args: typing.Any = field(default_factory=dict)  # the env's own settings: its `Settings` in
    #                   rmdt/envs/<env>/settings.py; a mapping in YAML, that typed dataclass once loaded

    def __post_init__(self) -> None:
        if self.env is None:
            raise ConfigError(f"evaluation.env must be set (an environment: {', '.join(ENVS)})", "evaluation.env")
        self.env_args = env_settings(self.env, self.env_args)
        targets = self.target_returns()
        if not targets or any(isinstance(t, bool) or not isinstance(t, (int, float, type(None))) for t in targets):
            raise ConfigError(f"evaluation.target_return must be a number, a non-empty list of numbers or null, "
                              f"got {self.target_return!r}")
        for key in ("episodes", "num_envs", "periodic_episodes"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ConfigError(f"evaluation.{key} must be >= 1, got {getattr(self, key)}")

    def target_returns(self) -> list[float | None]:
        """``target_return`` as a list: each entry is one evaluation (None: the env's default)."""
        return list(self.target_return) if isinstance(self.target_return, list) else [self.target_return]

    @staticmethod
    def unknown_key_hint(key: str) -> str | None:
        """The hint for ``evaluation.KEY`` when KEY is an env setting written outside ``env_args``."""
        owners = [env for env in ENVS if key in _setting_names(env)]
        old = upgrade.flat_evaluation_owner(key)
        if old is not None and not owners:
            owners, key = [old[0]], old[1]
        if owners:
            return f" (env settings live in env_args: did you mean evaluation.env_args.{key}? env {', '.join(owners)})"
        return None


def _setting_names(env: str) -> list[str]:
    return [f.name for f in dataclasses.fields(env_settings_class(env))]


def env_settings(env: str, values):
    """The typed ``Settings`` of ``env`` built from ``values`` (a mapping, or such a Settings itself);
    ConfigError naming the key on an unknown env, a typo, a setting of another env or a bad value."""
    if env not in ENVS:
        raise ConfigError(f"evaluation.env {env!r} is unknown{did_you_mean(env, ENVS)}", "evaluation.env")
    settings = env_settings_class(env)
    if isinstance(values, settings):
        return values
    if dataclasses.is_dataclass(values):
        raise ConfigError(f"evaluation.env_args hold {type(values).__module__}.{type(values).__name__}, "
                          f"not the settings of env {env!r}")
    names = _setting_names(env)
    for key in values if isinstance(values, dict) and not set(values) <= set(names) else ():
        owners = [other for other in ENVS if other != env and key in _setting_names(other)]
        if key not in names and owners:
            raise ConfigError(f"evaluation.env_args.{key} is a setting of env {owners[0]!r}, not of {env!r} "
                              f"(known for {env}: {', '.join(names)})")
    return build(settings, values, "evaluation.env_args.")


def _nest_evaluation(values: dict) -> dict:
    """Flat evaluation settings in today's shape: a key that ``EvaluationConfig`` has stays, ``env_args``
    (a mapping) and ``env_args.KEY`` go to ``env_args``, and any other KEY is a setting of the env."""
    common = {f.name for f in dataclasses.fields(EvaluationConfig)} - {"env_args"}
    nested: dict = {"env_args": {}}
    for key, value in values.items():
        if key == "env_args":
            if not isinstance(value, dict) and not dataclasses.is_dataclass(value):
                raise ConfigError(f"evaluation.env_args must be a mapping, got {value!r}")
            nested["env_args"].update(value if isinstance(value, dict) else dataclasses.asdict(value))
        elif key in common:
            nested[key] = value
        else:
            nested["env_args"][key.removeprefix("env_args.")] = value
    return nested


def evaluation_overrides(texts: typing.Sequence[str]) -> dict:
    """``["episodes=10", "corridor_lengths=[9, 30]"]`` -> ``{"episodes": 10, "env_args": {"corridor_lengths":
    [9, 30]}}``, for changing a checkpoint's evaluation settings (see ``_nest_evaluation`` for the rule).

    Names that no env knows fail here with a did-you-mean; `override_evaluation` checks the rest
    against the checkpoint's env.
    """
    values: dict = {}
    for text in texts:
        if "=" not in text:
            raise ConfigError(f"evaluation setting {text!r} must look like key=value")
        key, raw = text.split("=", 1)
        values[key.strip()] = yaml.safe_load(raw) if raw else None
    nested = _nest_evaluation(values)
    common = [f.name for f in dataclasses.fields(EvaluationConfig) if f.name != "env_args"]
    known = common + sorted({name for env in ENVS for name in _setting_names(env)} - set(common))
    for key in nested["env_args"]:
        if key not in known:
            raise ConfigError(f"unknown evaluation setting {key}{did_you_mean(key, known)}")
    return nested


def evaluation_config(values: dict) -> EvaluationConfig:
    """An EvaluationConfig from its dict: today's shape, env settings also given flat (the rule of
    ``_nest_evaluation``), or the flat dict of checkpoints written before ``env_args`` existed."""
    return build(EvaluationConfig, _nest_evaluation(upgrade.upgrade_evaluation(values)), "evaluation.")


def override_evaluation(evaluation: EvaluationConfig, overrides: dict) -> EvaluationConfig:
    """``evaluation`` with ``overrides`` (flat or nested, see ``_nest_evaluation``) applied and checked;
    a new ``env`` starts from that env's default settings."""
    overrides = _nest_evaluation(overrides)
    values = dataclasses.asdict(evaluation)
    if overrides.get("env", evaluation.env) != evaluation.env:
        values["env_args"] = {}
    values.update({key: value for key, value in overrides.items() if key != "env_args"})
    values["env_args"].update(overrides["env_args"])
    return evaluation_config(values)
