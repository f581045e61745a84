"""What every policy's ``PretrainedConfig`` shares: checks of the observation and action spaces,
encoder, statistics and return scale, so a bad value fails when the model is built, naming the
field, and a checkpoint that writes every field (it never depends on today's defaults)."""
from __future__ import annotations

import torch

from rmdt.models.embeddings import OBS_ENCODERS


class FieldError(ValueError):
    """A bad model config field; ``field`` lets ``load_config`` name the run-config key instead."""

    def __init__(self, config: str, field: str, what: str, value):
        super().__init__(f"{config}.{field} must be {what}, got {value!r}")
        self.field, self.what, self.value = field, what, value


class PolicyConfigChecks:
    """Mixin before ``PretrainedConfig``; subclasses extend ``_validate`` with their own fields."""

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name in ("obs_shape", "obs_mean", "obs_std"):
            if isinstance(getattr(self, name), tuple):
                setattr(self, name, list(getattr(self, name)))
        self._validate()

    def require(self, ok: bool, field: str, what: str) -> None:
        if not ok:
            raise FieldError(type(self).__name__, field, what, getattr(self, field))

    @staticmethod
    def is_int(value, low: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= low

    def _validate(self) -> None:
        require, is_int = self.require, self.is_int
        require(isinstance(self.obs_shape, list) and all(is_int(n, 1) for n in self.obs_shape),
                "obs_shape", "a list of positive integers")
        require(self.num_actions is None or is_int(self.num_actions, 1), "num_actions", "None or an integer >= 1")
        require(self.act_dim is None or is_int(self.act_dim, 1), "act_dim", "None or an integer >= 1")
        require((self.num_actions is None) != (self.act_dim is None), "num_actions",
                f"set for discrete actions or None with act_dim set for continuous ones (act_dim={self.act_dim!r})")
        require(isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1, "dropout", "in [0, 1)")
        require(self.obs_encoder in OBS_ENCODERS, "obs_encoder", f"one of {sorted(OBS_ENCODERS)}")
        for name in ("obs_mean", "obs_std"):
            value = getattr(self, name)
            require(value is None or isinstance(value, list) and broadcasts(value, self.obs_shape), name,
                    f"None or a (nested) list broadcastable to obs_shape={self.obs_shape}")
        require(isinstance(self.return_scale, (int, float)) and self.return_scale > 0, "return_scale", "> 0")

    def to_diff_dict(self) -> dict:
        out = super().to_diff_dict()
        out.update({name: getattr(self, name) for name in type(self).__annotations__})
        return out


def broadcasts(values: list, shape: list[int]) -> bool:
    try:
        return list(torch.broadcast_shapes(torch.as_tensor(values).shape, tuple(shape))) == list(shape)
    except (RuntimeError, TypeError, ValueError):
        return False
