"""Builds the policy a run config asks for, with the dataset's facts (shapes, statistics) baked in."""
from __future__ import annotations

import dataclasses

import numpy as np

from rmdt.data.trajectories import Trajectories


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
    from rmdt.envs.registry import ENVS

    evaluation = dataclasses.asdict(config.evaluation)
    fill = ENVS.evaluator(evaluation["env"]).settings_from_data
    evaluation["env_args"] = fill(evaluation.get("env_args") or {}, trajectories)
    return evaluation


MEMOROID_ONLY = ("memory_size", "context_size", "horizon", "scan")  # ModelConfig fields RMDT does not take
RECURRENT_FIELDS = ("d_model", "n_layers", "n_heads", "dropout", "obs_encoder") + MEMOROID_ONLY


def build_policy(config, trajectories: Trajectories):
    """A fresh model for ``config.model`` on ``trajectories`` (its evaluation settings travel with it)."""
    from rmdt.models.recurrent import RecurrentModel
    from rmdt.models.rmdt import RMDTModel

    mean, std = observation_statistics(trajectories)
    model_config = policy_config(
        config, obs_shape=list(trajectories.observations.shape[1:]), num_actions=trajectories.num_actions,
        act_dim=None if trajectories.discrete else int(np.prod(trajectories.actions.shape[1:]) or 1),
        obs_mean=mean, obs_std=std, evaluation=evaluation_settings(config, trajectories))
    return (RMDTModel if config.model.kind == "rmdt" else RecurrentModel)(model_config)


def policy_config(config, **facts):
    """The model's own config for run ``config`` plus the data's ``facts`` (shapes, statistics); its
    checks run here, so ``load_config`` calls this with placeholder facts before any data is loaded."""
    from rmdt.config import MODEL_KINDS, RECURRENT_KINDS
    from rmdt.models.recurrent import RecurrentConfig
    from rmdt.models.rmdt import RMDTConfig

    m = dataclasses.asdict(config.model)
    kind = m.pop("kind")
    facts.setdefault("return_scale", config.data.return_scale)
    if kind in RECURRENT_KINDS:
        return RecurrentConfig(layer=kind, **{k: m[k] for k in RECURRENT_FIELDS}, **facts)
    if kind != "rmdt":
        raise ValueError(f"model.kind {kind!r} is unknown (known: {', '.join(MODEL_KINDS)})")
    return RMDTConfig(context_len=config.data.context_len, **{k: v for k, v in m.items() if k not in MEMOROID_ONLY},
                      **facts)
