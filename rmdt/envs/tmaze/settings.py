"""T-Maze's ``evaluation.env_args``."""
from __future__ import annotations

from dataclasses import dataclass, field

from rmdt.errors import ConfigError


@dataclass
class Settings:
    corridor_lengths: list = field(default_factory=lambda: [9, 30, 90, 150, 300, 600, 900])  # lengths evaluated
    periodic_lengths: list = field(default_factory=lambda: [90])  # lengths evaluated every training.eval_every steps

    def __post_init__(self) -> None:
        for key in ("corridor_lengths", "periodic_lengths"):
            lengths = getattr(self, key)
            if not lengths or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in lengths):
                raise ConfigError(f"evaluation.env_args.{key} must be a non-empty list of ints >= 1, got {lengths!r}")
