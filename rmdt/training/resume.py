"""The resume contract: the run directory's ``config.yaml`` rules a resumed run.

Settings that shape what was already trained (seed, data, model, batch, optimizer betas, warm-up,
precision...) cannot change on resume: a config that differs in any of them is refused in one line
naming each. The settings in ``RESUMABLE`` may change and are applied: more ``training.steps``
stretches the cosine decay from the resume step (rmdt.training.optim), a new ``training.lr``
rescales the restored schedule (the learning rate from the resume step on is the new lr times the
schedule's factor), and logging, checkpointing, evaluation and fault settings simply take effect.
Fewer ``training.steps`` than the checkpoint's step are refused. The run's ``config.yaml`` is
rewritten only once the checkpoint has been loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rmdt.config import Config, ConfigError, load_config
from rmdt.training.checkpoint import newest_intact

RESUMABLE = ("name", "data.root", "training.steps", "training.lr", "training.grad_clip", "training.log_every",
             "training.checkpoint_every", "training.keep_checkpoints", "training.eval_every",
             "training.max_bad_steps", "training.collective_timeout_s", "training.trackers",
             "training.compile", "training.checkpoint_segments", "data.prefetch", "evaluation.")


class ResumeError(ValueError):
    """A resume that cannot go ahead; the message names the run directory and the settings."""


@dataclass
class ResumePlan:
    checkpoint: Path  # the newest intact checkpoint
    step: int
    train_seconds: float
    schedule: list  # schedule history including this resume's change of training.steps, if any
    changes: list[str] = field(default_factory=list)  # "key old -> new" for every applied change
    skipped: list[str] = field(default_factory=list)  # why newer checkpoints were not used


def flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and key != "recipe_args":
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def plan_resume(config: Config, run_dir: Path, processes: int) -> ResumePlan:
    """Checks ``config`` against the stored one and picks the checkpoint; creates and changes nothing."""
    run_dir = Path(run_dir)
    stored_file = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise ResumeError(f"--resume: run directory {run_dir} does not exist")
    if not stored_file.is_file():
        raise ResumeError(f"--resume: {stored_file} is missing, so the run's settings are unknown")
    try:
        stored = load_config(stored_file)
    except ConfigError as error:
        raise ResumeError(f"--resume: {error}") from error
    old, new = flatten(stored.to_dict()), flatten(config.to_dict())
    changed = [key for key in new if old.get(key) != new[key]]
    refused = [key for key in changed if not key.startswith(RESUMABLE)]
    if refused:
        listed = ", ".join(f"{key} ({old.get(key)!r} -> {new[key]!r})" for key in refused)
        allowed = ", ".join(k.rstrip(".") + ("*" if k.endswith(".") else "") for k in RESUMABLE)
        raise ResumeError(f"--resume: {stored_file} rules this run; cannot change {listed} (only {allowed} may)")
    checkpoint, state, skipped = newest_intact(run_dir, processes)
    step = int(state["step"])
    if config.training.steps < step:
        raise ResumeError(f"--resume: training.steps={config.training.steps} is below the step of "
                          f"{checkpoint} ({step}); give at least {step}")
    schedule = [list(x) for x in state.get("schedule", [[0, stored.training.steps]])]
    if config.training.steps != schedule[-1][1]:
        schedule.append([step, config.training.steps])
    return ResumePlan(checkpoint, step, float(state["train_seconds"]), schedule,
                      [f"{key} {old.get(key)!r} -> {new[key]!r}" for key in changed], skipped)


def apply_lr(optimizer, scheduler, lr: float) -> None:
    """Makes a changed ``training.lr`` rule the restored optimizer: every group's peak becomes ``lr``."""
    scheduler.base_lrs = [lr] * len(optimizer.param_groups)
    for group, factor in zip(optimizer.param_groups, (f(scheduler.last_epoch) for f in scheduler.lr_lambdas)):
        group["initial_lr"], group["lr"] = lr, lr * factor
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
