"""Memory Maze's ``evaluation.env_args``."""
from __future__ import annotations

from dataclasses import dataclass

from rmdt.errors import ConfigError

# Maze side (without outer walls) -> episode steps of the original benchmark at 4 actions per second.
NATIVE_STEPS = {9: 1000, 11: 2000, 13: 3000, 15: 4000}


@dataclass
class Settings:
    maze_size: int = 9  # maze side without outer walls (9, 11, 13 or 15)
    max_steps: int = 1000  # steps per evaluation episode (1000: the 9x9 benchmark; at most the size's native length)
    gif: str | None = None  # save the first evaluation episode as this GIF (null: none)

    def __post_init__(self) -> None:
        if self.maze_size not in NATIVE_STEPS:
            raise ConfigError(f"evaluation.env_args.maze_size must be one of {sorted(NATIVE_STEPS)}, "
                              f"got {self.maze_size}")
        if not 1 <= self.max_steps <= NATIVE_STEPS[self.maze_size]:
            raise ConfigError(f"evaluation.env_args.max_steps must be in [1, {NATIVE_STEPS[self.maze_size]}] for "
                              f"{self.maze_size}x{self.maze_size}, got {self.max_steps}")
