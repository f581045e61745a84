"""Builds the policy a run config asks for, with the dataset's facts (shapes, statistics) baked in."""
from __future__ import annotations

import dataclasses

import numpy as np

from rmdt.data.trajectories import Trajectories
from rmdt.envs.registry import ENVS
from rmdt.models.registry import MODELS, run_facts


def observation_statistics(trajectories: Trajectories) -> tuple[list | None, list | None]:
    """Per-feature mean and std of float observations (None for pixels, which encoders scale).

    Constant features get std 1, so normalisation never divides by zero.
    """
    obs = trajectories.observations
    if not np.issubdtype(obs.dtype, np.floating):
        return None, None
    mean = obs.mean(axis=0, dtype=np.float64)
    std = obs.std(axis=0, dtype=np.float64)
    std = np.where(std < 1e-6, 1.0, std)
    return mean.astype(np.float32).tolist(), std.astype(np.float32).tolist()


def evaluation_settings(config, trajectories: Trajectories) -> dict:
    """The run's evaluation settings as the checkpoint keeps them, completed from the data's facts by
    the environment's evaluator (``settings_from_data``: e.g. the gymnasium environment and the
    reference returns a Minari dataset names), so ``evaluate.py RUN`` needs no environment settings."""
    evaluation = dataclasses.asdict(config.evaluation)
    fill = ENVS.evaluator(evaluation["env"]).settings_from_data
    evaluation["env_args"] = fill(evaluation.get("env_args") or {}, trajectories)
    return evaluation


def build_policy(config, trajectories: Trajectories):
    """A fresh model of ``config.model.kind`` on ``trajectories`` (its evaluation settings travel with it)."""
    mean, std = observation_statistics(trajectories)
    kind = MODELS[config.model.kind]
    model_config = kind.config(
        config.model, obs_shape=list(trajectories.observations.shape[1:]), num_actions=trajectories.num_actions,
        act_dim=None if trajectories.discrete else int(np.prod(trajectories.actions.shape[1:]) or 1),
        obs_mean=mean, obs_std=std, evaluation=evaluation_settings(config, trajectories), **run_facts(config.data))
    return kind.model_class(model_config)
