"""Evaluation of checkpoints in their environment: ``evaluate.py`` and periodic evaluation in training."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

from rmdt.atomic import write_text
from rmdt.envs.registry import ENVS, env_evaluator  # noqa: F401  (env_evaluator: attention, probe)

# Each environment's evaluator (rmdt.envs.protocol.Evaluator) lives in its package, rmdt/envs/<name>/,
# found through the registry ENVS by the name in `evaluation.env`.


class CheckpointNotFound(FileNotFoundError):
    pass


def checkpoint_model_dir(path: str | Path) -> Path:
    """A ``save_pretrained`` directory, a training checkpoint ``checkpoints/step_N``, or a run
    directory whose ``final/`` is used."""
    path = Path(path)
    for candidate in (path, path / "final"):
        if (candidate / "config.json").is_file() or (candidate / "trainer_state.json").is_file():
            return candidate
    raise CheckpointNotFound(f"{path}: no config.json here or in {path / 'final'} "
                             "(expected a run directory or a save_pretrained directory)")


def load_policy(path: str | Path, device="cpu"):
    """Loads any rmdt model from a checkpoint directory, offline; clear errors on damaged files."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    import rmdt.models  # noqa: F401  (registers the model types with AutoModel)

    model_dir = checkpoint_model_dir(path)
    if (model_dir / "trainer_state.json").is_file():  # checkpoints/step_N: weights saved by Accelerate
        from rmdt.training.checkpoint import load_step_policy

        return load_step_policy(model_dir, device)
    hf_logging.disable_progress_bar()
    try:
        policy = AutoModel.from_pretrained(model_dir, local_files_only=True)
    except Exception as error:  # transformers/safetensors raise many kinds on damaged files
        raise ValueError(f"{model_dir}: cannot load the checkpoint ({type(error).__name__}: {error})") from error
    return policy.to(device).eval()


def by_target(rows: list[dict]) -> dict:
    """Rows grouped by their ``target_return`` (None when rows have none), in first-seen order."""
    groups: dict = {}
    for row in rows:
        groups.setdefault(row.get("target_return"), []).append(row)
    return groups


def target_suffix(rows: list[dict], row: dict) -> str:
    """``"_R{target}"`` when ``rows`` hold several target returns (so scalar names stay unique), else ``""``."""
    return f"_R{row['target_return']:g}" if len(by_target(rows)) > 1 else ""


def as_evaluation(evaluation, overrides: dict | None = None):
    """An ``EvaluationConfig`` from one, or from its dict (``rmdt.config.evaluation_config``: today's shape,
    env settings given flat, or a checkpoint's older flat one), with ``overrides`` (same rule) applied."""
    from rmdt.config import EvaluationConfig, evaluation_config, override_evaluation

    if not isinstance(evaluation, EvaluationConfig):
        evaluation = evaluation_config(dict(evaluation))
    return override_evaluation(evaluation, overrides) if overrides else evaluation


def evaluate_policy(policy, evaluation, overrides: dict | None = None, device="cpu", progress: bool = True,
                    periodic: bool = False) -> dict:
    """Rolls the policy out as ``evaluation`` says, once per target return; returns the report.

    ``evaluation``: an EvaluationConfig or its dict; ``overrides`` replaces settings for this call (e.g.
    ``{"episodes": 10, "corridor_lengths": [9]}``); ``periodic`` asks for the cheaper in-training
    evaluation (``periodic_episodes``, and what the env does less). Every row carries its ``target_return``.
    """
    evaluation = as_evaluation(evaluation, overrides)
    if periodic and evaluation.periodic_episodes is not None:
        evaluation = dataclasses.replace(evaluation, episodes=evaluation.periodic_episodes)
    evaluator = ENVS.evaluator(evaluation.env)
    targets = [resolve_target(evaluator, evaluation, target) for target in evaluation.target_returns()]
    was_training = policy.training
    policy.eval()
    results = []
    try:
        for target in targets:
            rows = evaluator.evaluate(policy, evaluation, evaluation.env_args, target, device=device,
                                      progress=progress, periodic=periodic)
            results += [{"target_return": target, **row} for row in rows]
    finally:
        policy.train(was_training)
    return {"env": evaluation.env,
            "target_return": targets if isinstance(evaluation.target_return, list) else targets[0],
            "seed": evaluation.seed, "episodes": evaluation.episodes,
            "env_args": dataclasses.asdict(evaluation.env_args), "results": results}


def resolve_target(evaluator, evaluation, target: float | None) -> float:
    """``target`` as a float, or the env's default target when it is None (ValueError if it has none)."""
    if target is None:
        target = evaluator.default_target(evaluation.env_args)
    if target is None:
        raise ValueError(f"evaluation.target_return is null and env {evaluation.env!r} has no default target: "
                         "set evaluation.target_return (or pass --target-return)")
    return float(target)


class Checkpoint(NamedTuple):
    """A loaded checkpoint: where it is, its policy and its evaluation settings."""

    model_dir: Path
    policy: object
    evaluation: object  # rmdt.config.EvaluationConfig


def checkpoint_policy(path, device="cpu") -> Checkpoint:
    """The ``Checkpoint`` (model_dir, policy, EvaluationConfig) of a checkpoint trained by rmdt (settings
    written in the older flat shape are converted). Load it once and pass it to ``evaluate_checkpoint``,
    ``rmdt.evaluation.probe.probe_checkpoint`` and ``rmdt.evaluation.attention_export.export_checkpoint_attention``."""
    model_dir = checkpoint_model_dir(path)
    policy = load_policy(model_dir, device)
    evaluation = getattr(policy.config, "evaluation", None)
    if evaluation is None:
        raise ValueError(f"{model_dir}: config.json has no 'evaluation' settings (not trained by rmdt?)")
    try:
        return Checkpoint(model_dir, policy, as_evaluation(evaluation))
    except ValueError as error:
        raise ValueError(f"{model_dir / 'config.json'}: {error}") from None


def as_checkpoint(checkpoint, device="cpu") -> Checkpoint:
    """``checkpoint`` itself when it is loaded already, else ``checkpoint_policy(checkpoint)``."""
    return checkpoint if isinstance(checkpoint, Checkpoint) else checkpoint_policy(checkpoint, device)


def evaluate_checkpoint(checkpoint, overrides: dict | None = None, out=None, device="cpu") -> Path:
    """Evaluates a checkpoint (a path or a loaded ``Checkpoint``); writes the JSON report and a PNG plot
    beside it; returns the JSON path."""
    model_dir, policy, evaluation = as_checkpoint(checkpoint, device)
    report = evaluate_policy(policy, evaluation, overrides, device)
    report["checkpoint"] = str(model_dir.resolve())
    out = Path(out) if out else model_dir.parent / "eval" / "results.json"
    write_text(out, json.dumps(report, indent=2))
    ENVS.evaluator(report["env"]).plot(report["results"], out.with_suffix(".png"),
                                      title=f"{model_dir.parent.name or model_dir.name}")
    return out
