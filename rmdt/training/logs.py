"""What a run tells people: console lines, ``train.log``, the trackers and the resolved config.

Scalars go through Accelerate's trackers (``training.trackers``: TensorBoard by default, under
``tensorboard/``; W&B, MLflow or Aim when installed), which receive the resolved config as
hyperparameters. Only the main process writes; the others hold a silent logger so call sites never
branch.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

from rmdt.config import Config
from rmdt.progress import BarSafeHandler, progress_bar

TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "aim": "aim"}


def check_trackers(trackers: list) -> None:
    """A chosen tracker whose package is missing is an error before anything starts."""
    for name in trackers:
        package = TRACKER_PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise ValueError(f"training.trackers: {name} is chosen but the package {package!r} is not installed "
                             f"(pip install {package}, or remove it from training.trackers)")


def hyperparameters(config: Config) -> dict:
    """The resolved config as flat ``section.key`` scalars (lists and dicts as text), as trackers take them."""
    from rmdt.training.resume import flatten

    return {key: value if isinstance(value, (int, float, str, bool)) else str(value)
            for key, value in flatten(config.to_dict()).items()}


class RunLogger:
    def __init__(self, run_dir: Path, accelerator) -> None:
        self.run_dir, self.accelerator = Path(run_dir), accelerator
        self.active = accelerator.is_main_process
        self.log = logging.getLogger(f"rmdt.run.{self.run_dir}")
        self.log.propagate = False
        self.bar = None
        if not self.active:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log.setLevel(logging.INFO)
        formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
        for handler in (BarSafeHandler(sys.stderr), logging.FileHandler(self.run_dir / "train.log")):
            handler.setFormatter(formatter)
            self.log.addHandler(handler)

    def start_trackers(self, config: Config) -> None:
        """Starts the trackers (TensorBoard writes ``tensorboard/<name>/``) with the config as hyperparameters."""
        if config.training.trackers:
            self.accelerator.init_trackers(config.name, config=hyperparameters(config))

    def progress(self, total: int, initial: int):
        """The run's progress bar; closed with the logger, so an error line never shares its line."""
        self.bar = progress_bar(total=total, initial=initial, disable=not self.active, unit="step")
        return self.bar

    def info(self, message: str) -> None:
        if self.active:
            self.log.info(message)

    def save_config(self, config: Config) -> None:
        if self.active:
            config.save(self.run_dir / "config.yaml")

    def scalars(self, group: str, values: dict, step: int) -> None:
        self.accelerator.log({f"{group}/{key}": value for key, value in values.items()}, step=step)
        self.info(f"step {step:>6}  " + "  ".join(f"{k} {v:.4g}" for k, v in values.items()))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.accelerator.end_training()
        for handler in list(self.log.handlers):
            handler.close()
            self.log.removeHandler(handler)
