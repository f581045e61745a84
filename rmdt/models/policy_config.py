"""What every policy's ``PretrainedConfig`` shares: checks of the observation and action spaces,
encoder, statistics and return scale, so a bad value fails when the model is built, naming the
field, and a checkpoint that writes every field (it never depends on today's defaults)."""
from __future__ import annotations

import torch
from transformers import PretrainedConfig

from rmdt.models.embeddings import OBS_ENCODERS


class FieldError(ValueError):
    """A bad model config field; ``field`` lets ``load_config`` name the run-config key instead."""

    def __init__(self, config: str, field: str, what: str, value, choices=()):
        super().__init__(f"{config}.{field} must be {what}, got {value!r}")
        self.field, self.what, self.value, self.choices = field, what, value, tuple(choices)


class PolicyConfigChecks:
    """Mixin before ``PretrainedConfig``; subclasses extend ``_validate`` with their own fields."""

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        for name in ("obs_shape", "obs_mean", "obs_std"):
            if isinstance(getattr(self, name), tuple):
                setattr(self, name, list(getattr(self, name)))
        self._validate()

    def require(self, ok: bool, field: str, what: str, choices=()) -> None:
        """FieldError unless ``ok``; ``choices``: the valid names, for a did-you-mean."""
        if not ok:
            raise FieldError(type(self).__name__, field, what, getattr(self, field), choices)

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
        require(self.obs_encoder in OBS_ENCODERS, "obs_encoder", f"one of {sorted(OBS_ENCODERS)}", OBS_ENCODERS)
        for name in ("obs_mean", "obs_std"):
            value = getattr(self, name)
            require(value is None or isinstance(value, list) and broadcasts(value, self.obs_shape), name,
                    f"None or a (nested) list broadcastable to obs_shape={self.obs_shape}")
        require(isinstance(self.return_scale, (int, float)) and self.return_scale > 0, "return_scale", "> 0")

    def to_diff_dict(self) -> dict:
        out = super().to_diff_dict()
        out.update({name: getattr(self, name) for name in type(self).__annotations__})
        return out


class PolicyConfig(PolicyConfigChecks, PretrainedConfig):
    """Base of a new model kind's config: the data facts every policy takes, checked as above.

    A subclass sets ``model_type`` and adds its own fields (annotated, with defaults); those fields are
    what the run config's model section may set once the kind is registered (rmdt.models.registry).
    """

    model_type = "rmdt_policy"

    obs_shape: list[int] | None = None  # shape of one observation; from the dataset
    num_actions: int | None = None  # discrete action count; None for continuous actions
    act_dim: int | None = None  # size of a continuous action in [-1, 1]; None for discrete actions
    obs_mean: list | None = None  # observation mean from the dataset; None: 0
    obs_std: list | None = None  # observation std from the dataset; None: 1
    return_scale: float = 1.0  # returns-to-go are divided by this before they reach the model
    dropout: float = 0.0  # dropout of the model's embeddings and residual branches
    obs_encoder: str = "mlp"  # name in rmdt.models.embeddings.OBS_ENCODERS


def broadcasts(values: list, shape: list[int]) -> bool:
    try:
        return list(torch.broadcast_shapes(torch.as_tensor(values).shape, tuple(shape))) == list(shape)
    except (RuntimeError, TypeError, ValueError):
        return False
