"""Evaluation of checkpoints in their environment: ``evaluate.py`` and periodic evaluation in training."""
from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

from rmdt.atomic import write_text

# env name -> module providing evaluate(policy, settings, device, progress, periodic) -> rows,
# plot(rows, path, title), describe(row) -> one console line and scalars(rows) -> {name: value}.
# Modules are imported on use, so an env's optional packages are needed only to evaluate in it.
ENV_EVALUATORS = {
    "tmaze": "rmdt.evaluation.tmaze",
    "atari": "rmdt.evaluation.atari",
    "memory_maze": "rmdt.evaluation.memory_maze",
}


class CheckpointNotFound(FileNotFoundError):
    pass


def checkpoint_model_dir(path: str | Path) -> Path:
    """A ``save_pretrained`` directory, or a run directory whose ``final/`` is used."""
    path = Path(path)
    for candidate in (path, path / "final"):
        if (candidate / "config.json").is_file():
            return candidate
    raise CheckpointNotFound(f"{path}: no config.json here or in {path / 'final'} "
                             "(expected a run directory or a save_pretrained directory)")


def load_policy(path: str | Path, device="cpu"):
    """Loads any rmdt model from a checkpoint directory, offline; clear errors on damaged files."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    import rmdt.models  # noqa: F401  (registers the model types with AutoModel)

    model_dir = checkpoint_model_dir(path)
    hf_logging.disable_progress_bar()
    try:
        policy = AutoModel.from_pretrained(model_dir, local_files_only=True)
    except Exception as error:  # transformers/safetensors raise many kinds on damaged files
        raise ValueError(f"{model_dir}: cannot load the checkpoint ({type(error).__name__}: {error})") from error
    return policy.to(device).eval()


def env_evaluator(env: str):
    """The evaluation module of ``env`` (see ``ENV_EVALUATORS``)."""
    if env not in ENV_EVALUATORS:
        raise ValueError(f"evaluation env {env!r} is unknown (known: {', '.join(ENV_EVALUATORS)})")
    return importlib.import_module(ENV_EVALUATORS[env])


def evaluate_policy(policy, evaluation, overrides: dict | None = None, device="cpu", progress: bool = True,
                    periodic: bool = False) -> dict:
    """Rolls the policy out as ``evaluation`` (an EvaluationConfig or its dict) says; returns the report.

    ``overrides`` replaces settings for this call (e.g. episodes, seed, corridor_lengths); ``periodic``
    asks the env for its cheaper in-training evaluation.
    """
    settings = dataclasses.asdict(evaluation) if dataclasses.is_dataclass(evaluation) else dict(evaluation)
    settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
    evaluator = env_evaluator(settings["env"])
    was_training = policy.training
    policy.eval()
    try:
        results = evaluator.evaluate(policy, settings, device=device, progress=progress, periodic=periodic)
    finally:
        policy.train(was_training)
    return {"env": settings["env"], "target_return": settings["target_return"], "seed": settings["seed"],
            "results": results}


def checkpoint_policy(path, device="cpu"):
    """``(model_dir, policy, evaluation settings)`` of a checkpoint trained by rmdt."""
    model_dir = checkpoint_model_dir(path)
    policy = load_policy(model_dir, device)
    evaluation = getattr(policy.config, "evaluation", None)
    if evaluation is None:
        raise ValueError(f"{model_dir}: config.json has no 'evaluation' settings (not trained by rmdt?)")
    return model_dir, policy, evaluation


def evaluate_checkpoint(path, overrides: dict | None = None, out=None, device="cpu") -> Path:
    """Evaluates a checkpoint; writes the JSON report and a PNG plot beside it; returns the JSON path."""
    model_dir, policy, evaluation = checkpoint_policy(path, device)
    report = evaluate_policy(policy, evaluation, overrides, device)
    report["checkpoint"] = str(model_dir.resolve())
    out = Path(out) if out else model_dir.parent / "eval" / "results.json"
    write_text(out, json.dumps(report, indent=2))
    env_evaluator(report["env"]).plot(report["results"], out.with_suffix(".png"),
                                      title=f"{model_dir.parent.name or model_dir.name}")
    return out


def probe_checkpoint(path, overrides: dict | None = None, out=None, device="cpu", progress: bool = True,
                     cache: bool = False) -> Path:
    """The memory probe (rmdt.evaluation.probe) of a checkpoint: memory intact, zeroed and shuffled
    (``cache``: the hidden-state cache with it).

    Writes the JSON report (default CHECKPOINT_RUN/eval/memory_probe.json) and a bar plot beside it;
    returns the JSON path. Models without segment memory (recurrent baselines) are a ValueError.
    """
    from rmdt.evaluation.probe import memory_probe, plot_probe

    model_dir, policy, evaluation = checkpoint_policy(path, device)
    try:
        report = memory_probe(policy, evaluation, overrides, device, progress, cache)
    except NotImplementedError as error:
        raise ValueError(f"{model_dir}: {error}") from error
    report["checkpoint"] = str(model_dir.resolve())
    out = Path(out) if out else model_dir.parent / "eval" / "memory_probe.json"
    write_text(out, json.dumps(report, indent=2))
    plot_probe(report, out.with_suffix(".png"), title=f"memory probe: {model_dir.parent.name or model_dir.name}")
    return out


def export_checkpoint_attention(path, out_dir, overrides: dict | None = None, episodes: int = 2,
                                max_segments: int | None = 64, per_head: bool = False, device="cpu",
                                progress: bool = True) -> dict:
    """Attention maps of a checkpoint (rmdt.evaluation.attention): an evaluation run of ``episodes``
    environments per setting, each exported to ``out_dir`` (recurrent models: state norms instead).

    Returns the index also written to ``out_dir/attention.json``.
    """
    from rmdt.evaluation.attention import export_attention

    model_dir, policy, evaluation = checkpoint_policy(path, device)
    index = export_attention(policy, evaluation, out_dir, {**(overrides or {}), "episodes": episodes}, episodes,
                             max_segments, per_head, device, progress)
    index["checkpoint"] = str(model_dir.resolve())
    write_text(Path(out_dir) / "attention.json", json.dumps(index, indent=2))
    return index
