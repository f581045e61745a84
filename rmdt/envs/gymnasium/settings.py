"""The gymnasium evaluator's ``evaluation.env_args``."""
from __future__ import annotations

from dataclasses import dataclass, field

from rmdt.errors import ConfigError

VECTOR_MODES = ("sync", "async")


@dataclass
class Settings:
    """``id`` null is filled in when training starts, from the environment the data names; ``wrapper`` null
    is the suite's own (rmdt.envs.gymnasium.wrappers.default_wrapper) for popgym-* and MiniGrid-Memory* ids,
    and none for other ids."""

    id: str | None = None  # gymnasium id (e.g. Hopper-v5); null: the one the training data names
    kwargs: dict = field(default_factory=dict)  # keyword arguments of gymnasium.make (e.g. {reset_noise_scale: 0.005})
    max_episode_steps: int | None = None  # cut episodes after this many steps; null: the environment's own limit
    vector: str = "sync"  # "sync": all in this process (SyncVectorEnv); "async": a subprocess each (AsyncVectorEnv)
    obs_keys: list | None = None  # dict observations: leaves (dotted paths) in this order; null: the space's order
    frame_stack: int | None = None  # steps stacked per observation, as in the data; null: from the policy's input shape
    ref_min_score: float | None = None  # return scored 0 (random play); null: from the data, else no normalised score
    ref_max_score: float | None = None  # return scored 100 (expert); null: from the data, else no normalised score
    wrapper: str | None = None  # wrapper the data was made through (popgym_flat, minigrid_symbolic); null: see above

    def __post_init__(self) -> None:
        if self.wrapper is not None:
            from rmdt.envs.gymnasium.wrappers import WRAPPERS

            if self.wrapper not in WRAPPERS:
                raise ConfigError(f"evaluation.env_args.wrapper must be one of {', '.join(WRAPPERS)} or null, "
                                  f"got {self.wrapper!r}")
        if self.vector not in VECTOR_MODES:
            raise ConfigError(f"evaluation.env_args.vector must be one of {', '.join(VECTOR_MODES)}, "
                              f"got {self.vector!r}")
        if self.frame_stack is not None and self.frame_stack < 1:
            raise ConfigError(f"evaluation.env_args.frame_stack must be >= 1 or null, got {self.frame_stack}")
        if (self.ref_min_score is None) != (self.ref_max_score is None):
            raise ConfigError("evaluation.env_args: set both ref_min_score and ref_max_score, or neither")
