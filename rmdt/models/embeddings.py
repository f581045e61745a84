"""Token embeddings: return-to-go, observation (normalisation + a registry of encoders), action,
and positions within a segment.

Observation encoders are looked up by name in ``OBS_ENCODERS`` so that image encoders (a
Nature-CNN for 84x84 Atari or 64x64 Memory Maze frames) can be added with
``@register_obs_encoder("nature_cnn")`` without touching the model.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

# name -> builder(obs_shape, d_model) returning a module mapping (..., *obs_shape) -> (..., d_model)
OBS_ENCODERS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {}


def register_obs_encoder(name: str):
    """Class or function decorator adding an observation encoder builder under ``name``."""
    def add(builder):
        if name in OBS_ENCODERS:
            raise ValueError(f"observation encoder {name!r} is already registered")
        OBS_ENCODERS[name] = builder
        return builder
    return add


def build_obs_encoder(name: str, obs_shape: Sequence[int], d_model: int) -> nn.Module:
    if name not in OBS_ENCODERS:
        raise ValueError(f"obs_encoder must be one of {sorted(OBS_ENCODERS)}, got {name!r}")
    return OBS_ENCODERS[name](tuple(obs_shape), d_model)


@register_obs_encoder("mlp")
class MLPObsEncoder(nn.Module):
    """Flattened vector observation -> Linear -> GELU -> Linear."""

    def __init__(self, obs_shape: tuple[int, ...], d_model: int):
        super().__init__()
        self.obs_ndim = len(obs_shape)
        self.net = nn.Sequential(nn.Linear(math.prod(obs_shape), d_model), nn.GELU(), nn.Linear(d_model, d_model))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.flatten(-self.obs_ndim) if self.obs_ndim else obs.unsqueeze(-1))


@register_obs_encoder("nature_cnn")
class NatureCNNEncoder(nn.Module):
    """The Nature-DQN convolutional torso (Mnih et al., 2015) for pixel observations -> d_model.

    Takes uint8 or float pixels in [0, 255]: (C, H, W) stacks such as Atari's 4x84x84, (H, W, C)
    images such as Memory Maze's 64x64x3 (channels last when the last axis has at most 4 entries
    and the first more), or (H, W) single frames. Scales by 1/255 itself, so no dataset statistics.
    """

    def __init__(self, obs_shape: tuple[int, ...], d_model: int):
        super().__init__()
        if len(obs_shape) not in (2, 3):
            raise ValueError(f"nature_cnn needs (C, H, W), (H, W, C) or (H, W) observations, got shape {obs_shape}")
        self.obs_ndim = len(obs_shape)
        self.channels_last = self.obs_ndim == 3 and obs_shape[-1] <= 4 < obs_shape[0]
        if self.obs_ndim == 2:
            chw = (1, *obs_shape)
        else:
            chw = (obs_shape[-1], *obs_shape[:2]) if self.channels_last else tuple(obs_shape)
        self.conv = nn.Sequential(nn.Conv2d(chw[0], 32, 8, stride=4), nn.ReLU(),
                                  nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                                  nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
        with torch.no_grad():
            flat = self.conv(torch.zeros(1, *chw)).shape[-1]
        self.head = nn.Sequential(nn.Linear(flat, d_model), nn.ReLU())
        self.chw = chw

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:obs.ndim - self.obs_ndim]
        x = obs.reshape(-1, *obs.shape[obs.ndim - self.obs_ndim:]).float() / 255.0
        if self.channels_last:
            x = x.permute(0, 3, 1, 2)
        return self.head(self.conv(x.reshape(-1, *self.chw))).reshape(*lead, -1)


@register_obs_encoder("symbolic_grid")
class SymbolicGridEncoder(nn.Module):
    """A small symbolic grid view plus a direction -> d_model (MiniGrid through the wrapper ``minigrid_symbolic``).

    The observation is one vector: a k x k x 3 view of (object, colour, state) indices, row-major
    over (x, y, channel), then the agent's direction (0-3). Each cell is the sum of an embedding
    per channel (MiniGrid's 11 objects, 6 colours, 3 states), two 3x3 convolutions read the view and
    the direction's embedding is added to their projection. Needs integer observations (uint8:
    no dataset statistics normalise them).
    """

    CHANNEL_SIZES = (11, 6, 3)  # MiniGrid's OBJECT_TO_IDX, COLOR_TO_IDX, STATE_TO_IDX
    CELL = 16  # width of a cell's embedding

    def __init__(self, obs_shape: tuple[int, ...], d_model: int):
        super().__init__()
        side = math.isqrt(max(obs_shape[-1] - 1, 0) // 3) if len(obs_shape) == 1 else 0
        if side < 1 or 3 * side * side + 1 != obs_shape[-1]:
            raise ValueError("symbolic_grid needs flat observations of k*k*3 + 1 entries (k >= 1), "
                             f"got shape {obs_shape}")
        self.side = side
        self.offsets = tuple(sum(self.CHANNEL_SIZES[:i]) for i in range(3))  # each channel's rows of the table
        self.cells = nn.Embedding(sum(self.CHANNEL_SIZES), self.CELL)
        self.conv = nn.Sequential(nn.Conv2d(self.CELL, 32, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.Flatten())
        self.proj = nn.Linear(32 * side * side, d_model)
        self.direction = nn.Embedding(4, d_model)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-1]
        index = obs.reshape(-1, obs.shape[-1]).long()
        view = index[:, :-1].reshape(-1, self.side, self.side, 3) + index.new_tensor(self.offsets)
        cells = self.cells(view).sum(-2).permute(0, 3, 2, 1)  # (n, CELL, y, x)
        out = self.proj(self.conv(cells)) + self.direction(index[:, -1])
        return out.reshape(*lead, -1)


class ObsNormalizer(nn.Module):
    """``(obs - mean) / std`` with dataset statistics stored as buffers, so they are saved in the
    checkpoint next to the weights and evaluation needs nothing else. No statistics: identity
    (apart from the cast to float, which also covers uint8 pixels)."""

    def __init__(self, mean: list | None, std: list | None, eps: float = 1e-6):
        super().__init__()
        self.enabled = mean is not None or std is not None
        if self.enabled:
            mean_t = torch.as_tensor(mean if mean is not None else 0.0, dtype=torch.float32)
            std_t = torch.as_tensor(std if std is not None else 1.0, dtype=torch.float32)
            self.register_buffer("mean", mean_t)
            self.register_buffer("std", std_t.clamp_min(eps))  # a constant feature has std 0

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs.float()
        return (obs - self.mean) / self.std if self.enabled else obs


class ReturnEmbedding(nn.Module):
    """Scalar return-to-go (already divided by the return scale) -> d_model."""

    def __init__(self, d_model: int):
        super().__init__()
        self.proj = nn.Linear(1, d_model)

    def forward(self, returns_to_go: torch.Tensor) -> torch.Tensor:
        return self.proj(returns_to_go.float().unsqueeze(-1))


class ActionEmbedding(nn.Module):
    """Discrete actions: a lookup table; continuous actions: a linear map."""

    def __init__(self, d_model: int, num_actions: int | None = None, act_dim: int | None = None):
        super().__init__()
        self.discrete = num_actions is not None
        self.embed = nn.Embedding(num_actions, d_model) if self.discrete else nn.Linear(act_dim, d_model)

    def forward(self, actions: torch.Tensor) -> torch.Tensor:
        return self.embed(actions.long() if self.discrete else actions.float())


POSITION_EMBEDDINGS = ("learned", "sinusoidal")  # the kinds of PositionEmbedding


class PositionEmbedding(nn.Module):
    """Positions of the tokens within one segment ``[read M ; (R, o, a) x K ; write M]``.

    Positions restart in every segment: nothing depends on the absolute episode timestep, so a
    model trained on short windows can run episodes of any length (T-Maze evaluates up to 9600
    steps). ``learned``: a trained table; ``sinusoidal``: the fixed table of Vaswani et al.
    (kept as a saved buffer).
    """

    def __init__(self, num_positions: int, d_model: int, kind: str = "learned"):
        super().__init__()
        if kind == "learned":
            self.weight = nn.Parameter(torch.zeros(num_positions, d_model))
        elif kind == "sinusoidal":
            self.register_buffer("weight", sinusoidal_table(num_positions, d_model))
        else:
            raise ValueError(f"position_embedding must be 'learned' or 'sinusoidal', got {kind!r}")
        self.learned = kind == "learned"

    def forward(self, start: int, stop: int) -> torch.Tensor:
        """Embeddings of positions ``start .. stop-1``: (stop - start, d_model)."""
        return self.weight[start:stop]


def sinusoidal_table(num_positions: int, d_model: int) -> torch.Tensor:
    position = torch.arange(num_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(num_positions, d_model)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : d_model // 2]
    return table


def add_step_embeddings(model: nn.Module, config, d_model: int) -> None:
    """Gives ``model`` the layers every policy reads a step with, under the names checkpoints use: ``obs_norm``
    (dataset statistics), ``embed_obs`` (the config's encoder), ``embed_return`` and ``embed_action``."""
    model.obs_norm = ObsNormalizer(config.obs_mean, config.obs_std)
    model.embed_obs = build_obs_encoder(config.obs_encoder, config.obs_shape, d_model)
    model.embed_return = ReturnEmbedding(d_model)
    model.embed_action = ActionEmbedding(d_model, config.num_actions, config.act_dim)
