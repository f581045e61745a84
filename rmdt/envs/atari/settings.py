"""Atari's ``evaluation.env_args``."""
from __future__ import annotations

from dataclasses import dataclass

from rmdt.errors import ConfigError


@dataclass
class Settings:
    game: str = "Breakout"  # ALE game (Breakout, Pong, Qbert, Seaquest, ...)
    sticky_actions: float = 0.0  # probability of repeating the last action (0 in DT/RATE, 0.25 in Dopamine)
    max_steps: int = 27000  # agent steps before an episode is cut (108k frames at frame skip 4)

    def __post_init__(self) -> None:
        from rmdt.envs.atari.env import rom_id

        if not 0.0 <= self.sticky_actions <= 1.0:
            raise ConfigError(f"evaluation.env_args.sticky_actions must be in [0, 1], got {self.sticky_actions}")
        if self.max_steps < 1:
            raise ConfigError(f"evaluation.env_args.max_steps must be >= 1, got {self.max_steps}")
        try:
            rom_id(self.game)
        except ImportError:  # ale_py (the atari extra) missing: evaluating will say so
            pass
        except ValueError as error:
            raise ConfigError(f"evaluation.env_args.game: {error}") from None
