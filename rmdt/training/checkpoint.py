"""Checkpoints that rebuild a run exactly, written atomically and verified before use.

A checkpoint is a directory ``checkpoints/step_000500`` holding what ``Accelerator.save_state``
writes (model, optimizer, scheduler, the RNG states of every process), the policy's ``config.json``
(so ``evaluate.py`` can load the step's weights) and ``trainer_state.json``: the step, the
training time so far, the schedule history (rmdt.training.optim) and a manifest of every other
file with its size and SHA-256. It is written under a temporary name and renamed into place only
when complete, so a run killed mid-save leaves the previous checkpoint as the newest one; a save
that fails (a full disk) removes its staging folder and leaves the previous checkpoints as they
were. The batch of a step depends only on ``(seed, step)``, so the step is all the data state there is.

Accelerate's ``load_state`` skips an unreadable RNG file with a log line at INFO level; the
manifest makes any damaged or missing file an error naming it instead.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from rmdt.atomic import current_umask

STATE_FILE = "trainer_state.json"
_NAME = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used or written; the message names the file or directory."""


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (half-written ones have no final name)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def normalize_permissions(directory: Path) -> None:
    """Gives every file the umask's usual mode (safetensors writes 0600, everything else 0644)."""
    for path in Path(directory).iterdir():
        if path.is_file():
            os.chmod(path, 0o666 & ~current_umask())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(accelerator, run_dir: Path, step: int, keep: int, state: dict, policy_config=None) -> Path:
    """Saves the full training state after ``step`` optimizer steps; keeps the ``keep`` newest.

    ``state`` (train_seconds, schedule, ...) goes into trainer_state.json with the step and the manifest.
    """
    root = Path(run_dir) / "checkpoints"
    final = root / f"step_{step:06d}"
    staging = root / f".staging_step_{step:06d}"
    previous = checkpoint_dirs(run_dir)
    try:
        if accelerator.is_main_process:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))  # every process writes its own RNG state here
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if policy_config is not None:
                policy_config.to_json_file(staging / "config.json")
            normalize_permissions(staging)
            files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)}
                     for p in sorted(staging.iterdir()) if p.is_file()}
            manifest = {"step": step, "processes": accelerator.num_processes, **state, "files": files}
            (staging / STATE_FILE).write_text(json.dumps(manifest, indent=1))
            os.chmod(staging / STATE_FILE, 0o666 & ~current_umask())
            shutil.rmtree(final, ignore_errors=True)
            staging.rename(final)
    except Exception as error:  # OSError, or torch's RuntimeError for a write that failed (a full disk)
        shutil.rmtree(staging, ignore_errors=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else f"{type(error).__name__}: {error}"
        intact = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint exists"
        raise CheckpointError(f"cannot write checkpoint {final}: {reason}; {intact}") from error
    if accelerator.is_main_process:
        for old in checkpoint_dirs(run_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def read_state(checkpoint: Path) -> dict:
    """The checkpoint's trainer_state.json (a CheckpointError naming it if unreadable)."""
    state_file = Path(checkpoint) / STATE_FILE
    try:
        state = json.loads(state_file.read_text())
        int(state["step"]), float(state["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{state_file}: not a usable checkpoint state ({type(error).__name__}: {error})") from error
    return state


def verify_checkpoint(checkpoint: Path, processes: int) -> dict:
    """Checks every file against the manifest (and an RNG file per process); returns the state."""
    state = read_state(checkpoint)
    files = state.get("files")
    if files is None:  # written before manifests: check that the parts Accelerate needs exist
        files = {name: None for name in ("optimizer.bin", "scheduler.bin")}
    for rank in range(processes):
        files.setdefault(f"random_states_{rank}.pkl", None)
    for name, expected in files.items():
        path = Path(checkpoint) / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the checkpoint")
        if expected and (path.stat().st_size != expected["bytes"] or _sha256(path) != expected["sha256"]):
            raise CheckpointError(f"{path}: damaged (its size or SHA-256 differs from {STATE_FILE})")
    return state


def newest_intact(run_dir: Path, processes: int) -> tuple[Path, dict, list[str]]:
    """The newest checkpoint that verifies, its state, and one line per newer one that did not."""
    skipped = []
    for checkpoint in reversed(checkpoint_dirs(run_dir)):
        try:
            return checkpoint, verify_checkpoint(checkpoint, processes), skipped
        except CheckpointError as error:
            skipped.append(str(error))
    if skipped:
        raise CheckpointError(f"--resume: no intact checkpoint in {Path(run_dir) / 'checkpoints'} "
                              f"({'; '.join(skipped)})")
    raise CheckpointError(f"--resume: no checkpoint in {Path(run_dir) / 'checkpoints'}")


def load_checkpoint(accelerator, checkpoint: Path) -> None:
    """Restores the training state saved in a verified ``checkpoint``."""
    try:
        accelerator.load_state(str(checkpoint))
    except Exception as error:  # torch/safetensors raise many kinds on damaged files
        raise CheckpointError(f"{checkpoint}: cannot be loaded ({type(error).__name__}: {error})") from error


def load_step_policy(checkpoint: Path, device="cpu"):
    """The policy of a training checkpoint ``checkpoints/step_N``: its config.json (or, for
    checkpoints written before they held one, the run's ``final/config.json``) and its weights
    (Accelerate saved them under the trainer's wrapper, so their names start with ``policy.``)."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    import rmdt.models  # noqa: F401  (registers the model types)

    checkpoint = Path(checkpoint)
    config_file = next((p for p in (checkpoint / "config.json", checkpoint.parent.parent / "final" / "config.json")
                        if p.is_file()), None)
    if config_file is None:
        raise ValueError(f"{checkpoint}: no config.json here or in the run's final/ to rebuild the model from")
    weights = checkpoint / "model.safetensors"
    try:
        policy = AutoModel.from_config(AutoConfig.from_pretrained(config_file.parent, local_files_only=True))
        state = {key.removeprefix("policy."): value for key, value in load_file(weights).items()}
        policy.load_state_dict(state)
    except Exception as error:  # transformers/safetensors raise many kinds on damaged files
        raise ValueError(f"{weights}: cannot load the step's model ({type(error).__name__}: {error})") from error
    return policy.to(device).eval()
