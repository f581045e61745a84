"""A return-conditioned recurrent policy over memoroid layers (FFM, linear attention, LRU) or
classic RNNs (GRU, LSTM: the baselines of the FFM paper), all with the same inputs, blocks and head.

Each step is one input, the sum of embeddings of the return-to-go, the observation and the
previous action (a learned "no action yet" vector at an episode's first step), run through
``n_layers`` pre-norm residual blocks of [memoroid layer ; MLP]; the action is read from the output.

Episode starts come from ``timesteps == 0`` in a batch: a tape of concatenated episodes (tape
batching) and padded segments both train through the same resettable scan. The first step of
every row is a start too, so a window that begins mid-episode starts from an empty memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init

from rmdt.models.embeddings import add_step_embeddings
from rmdt.models.memoroid import SCANS, Element
from rmdt.models.memoroid_layers import FFM, LRU, LinearAttention
from rmdt.models.policy import Policy, action_loss
from rmdt.models.policy_config import PolicyConfigChecks
from rmdt.models.rnn_layers import RNNLayer
from rmdt.models.transformer import maybe_dropout


class RecurrentConfig(PolicyConfigChecks, PretrainedConfig):
    """Everything needed to rebuild the model, written to config.json next to the weights."""

    model_type = "rmdt_recurrent"

    obs_shape: list[int] | None = None  # shape of one observation, e.g. [4]; required
    num_actions: int | None = None  # number of discrete actions; None for continuous actions
    act_dim: int | None = None  # size of a continuous action in [-1, 1]; None for discrete actions
    layer: str = "ffm"  # memory layer: a memoroid ("ffm", "linear_attention", "lru") or an RNN ("gru", "lstm")
    d_model: int = 64  # width of the step embedding and of every layer
    n_layers: int = 2  # residual blocks of [memoroid layer ; MLP]
    memory_size: int = 32  # FFM traces m; LRU complex state size; linear attention key size per head
    context_size: int = 4  # FFM contexts c (state m * c complex numbers)
    n_heads: int = 4  # linear attention heads (divides d_model)
    horizon: int = 1024  # FFM initialisation: longest expected episode (decays and periods)
    scan: str = "auto"  # "auto" (faster for the device), "parallel" (GRU/LSTM: packed runs between resets)
    #                     or "sequential"
    dropout: float = 0.0  # on the step embedding and the residual branches
    obs_encoder: str = "mlp"  # name in rmdt.models.embeddings.OBS_ENCODERS
    obs_mean: list | None = None  # observation mean from the dataset; None: 0
    obs_std: list | None = None  # observation std from the dataset; None: 1
    return_scale: float = 1.0  # returns-to-go are divided by this before they reach the model
    initializer_range: float = 0.02  # std of the normal init of linear and embedding weights

    def _validate(self) -> None:
        super()._validate()
        require, is_int = self.require, self.is_int
        require(self.layer in MEMORY_LAYERS, "layer", f"one of {list(MEMORY_LAYERS)}", MEMORY_LAYERS)
        for name in ("n_layers", "memory_size", "context_size", "n_heads", "horizon"):
            require(is_int(getattr(self, name), 1), name, "an integer >= 1")
        require(is_int(self.d_model, 1) and (self.layer != "linear_attention" or self.d_model % self.n_heads == 0),
                "d_model", f"a positive integer (divisible by n_heads={self.n_heads} for linear attention)")
        require(self.scan in SCANS, "scan", f"one of {list(SCANS)}", SCANS)


@dataclass(frozen=True)
class MemoryLayer:
    """A recurrent memory layer: how to build it from the config, and the config fields it reads."""

    build: Callable[[RecurrentConfig], nn.Module]
    fields: tuple[str, ...]  # RecurrentConfig fields of this layer beyond COMMON_FIELDS


COMMON_FIELDS = ("d_model", "n_layers", "dropout", "obs_encoder", "scan", "initializer_range")
MEMORY_LAYERS = {
    "ffm": MemoryLayer(lambda c: FFM(c.d_model, c.memory_size, c.context_size, c.horizon, c.scan),
                       ("memory_size", "context_size", "horizon")),
    "linear_attention": MemoryLayer(lambda c: LinearAttention(c.d_model, c.n_heads, c.memory_size, c.scan),
                                    ("n_heads", "memory_size")),
    "lru": MemoryLayer(lambda c: LRU(c.d_model, c.memory_size, scan_mode=c.scan), ("memory_size",)),
    "gru": MemoryLayer(lambda c: RNNLayer(c.d_model, "gru", c.scan), ()),
    "lstm": MemoryLayer(lambda c: RNNLayer(c.d_model, "lstm", c.scan), ()),
}


class Block(nn.Module):
    """x + layer(LN x), then x + MLP(LN x); the layer's state passes through."""

    def __init__(self, config: RecurrentConfig) -> None:
        super().__init__()
        d = config.d_model
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.memory = MEMORY_LAYERS[config.layer].build(config)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.drop = maybe_dropout(config.dropout)

    def forward(self, x, starts, state):
        y, state = self.memory(self.ln_1(x), starts, state)
        x = x + self.drop(y)
        return x + self.drop(self.mlp(self.ln_2(x))), state


@dataclass
class RecurrentState:
    """Rollout state of ``act``: each layer's last prefix and which environments start next step."""

    layers: list[Element]  # (RNN layers: their hidden state tuples)
    first: torch.Tensor  # (B,) bool: the next step is an episode's first (no previous action)
    last_action: torch.Tensor | None = None  # set by ``forward``: the action before its next chunk


class RecurrentModel(PreTrainedModel, Policy):
    """Return-conditioned memoroid policy: step embeddings -> resettable scans -> actions."""

    config_class = RecurrentConfig
    batchings = ("segments", "tape")
    base_model_prefix = "recurrent"
    main_input_name = "observations"
    _no_split_modules = ["Block"]

    def __init__(self, config: RecurrentConfig):
        super().__init__(config)
        d = config.d_model
        self.discrete = config.num_actions is not None
        add_step_embeddings(self, config, d)
        self.no_action = nn.Parameter(torch.zeros(d))  # "previous action" at an episode's first step
        self.drop = maybe_dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.num_actions if self.discrete else config.act_dim)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RecurrentModel):
            init.normal_(module.no_action, std=self.config.initializer_range)
        elif isinstance(module, (FFM, LRU)):  # decays and periods, which the generic init leaves alone
            for name, value in module.memory_init().items():
                init.copy_(getattr(module, name), value)

    def _embed(self, returns_to_go, observations, previous_actions, first) -> torch.Tensor:
        prev = torch.where(first[..., None], self.no_action, self.embed_action(previous_actions))
        x = self.embed_return(returns_to_go) + self.embed_obs(self.obs_norm(observations)) + prev
        return self.drop(x)

    def _run(self, x, starts, states):
        new_states = []
        for block, state in zip(self.blocks, states):
            x, state = block(x, starts, state)
            new_states.append(state)
        out = self.head(self.ln_f(x))
        return (out if self.discrete else torch.tanh(out)), new_states

    def forward(self, returns_to_go: torch.Tensor, observations: torch.Tensor, actions: torch.Tensor,
                starts: torch.Tensor, state: RecurrentState | None = None) -> tuple[torch.Tensor, RecurrentState]:
        """Action outputs for (B, T) steps; ``starts`` (B, T) is True at every episode's first step.

        The action at step t is predicted from a_{<t} only (a_t enters at step t + 1). ``state``
        continues from an earlier ``forward`` chunk (else every row starts empty); the final state
        is returned.
        """
        if state is None:
            state = self.initial_state(returns_to_go.shape[0], returns_to_go.device)
        previous = torch.cat([actions[:, :1], actions[:, :-1]], dim=1)
        if state.last_action is not None:
            previous[:, 0] = state.last_action
        starts = starts.clone()
        starts[:, 0] |= state.first
        x = self._embed(returns_to_go, observations, previous, starts)
        out, layers = self._run(x, starts, state.layers)
        return out, RecurrentState(layers=layers, first=torch.zeros_like(state.first), last_action=actions[:, -1])

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross entropy (discrete) or MSE (continuous) averaged over the real steps of the batch."""
        starts = batch.timesteps == 0
        starts[:, 0] = True
        preds, _ = self(batch.returns_to_go, batch.observations, batch.actions, starts)
        return action_loss(preds, batch.actions, batch.mask, self.discrete)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> RecurrentState:
        device = device if device is not None else self.no_action.device
        layers = [block.memory.initial_state(batch_size, device) for block in self.blocks]
        return RecurrentState(layers=layers, first=torch.ones(batch_size, dtype=torch.bool, device=device))

    @torch.no_grad()
    def act(self, state: RecurrentState, obs, last_action, last_reward, return_to_go):
        """One step: the same scan as training, over a single step from the carried state."""
        first = state.first[:, None]
        x = self._embed(return_to_go[:, None], obs[:, None], last_action[:, None], first)
        out, layers = self._run(x, first, state.layers)
        return out[:, 0], RecurrentState(layers=layers, first=torch.zeros_like(state.first))

    def reset(self, state: RecurrentState, done) -> RecurrentState:
        """Environments where ``done`` start a new episode at the next step (their memory is reset there)."""
        done = torch.as_tensor(done, dtype=torch.bool, device=state.first.device)
        return RecurrentState(layers=state.layers, first=state.first | done)


