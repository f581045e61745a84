"""ELMUR's model and its training forward: a window of N segments, run segment by segment.

Each segment's (R, o, a) x K tokens run causally through the layers; every layer's tokens also read
that layer's memory bank as it stood before the segment, and after the segment the bank's slots
attend to the layer's tokens and one slot is rewritten (rmdt.models.elmur.layers). What a segment
writes is read only by later segments, so no token ever sees a later token. Rollouts, one step at a
time, are the job of rmdt.models.elmur.inference.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init

from rmdt.models.elmur.config import ELMURConfig
from rmdt.models.elmur.inference import ELMURRollouts
from rmdt.models.elmur.layers import ELMURLayer, lru_write
from rmdt.models.embeddings import PositionEmbedding, add_step_embeddings
from rmdt.models.policy import Policy, action_loss
from rmdt.models.rmdt.model import segment_mask
from rmdt.models.transformer import maybe_dropout


@dataclass
class ELMUROutput:
    action_preds: torch.Tensor  # (B, L, num_actions) logits or (B, L, act_dim) actions in [-1, 1]
    memory: torch.Tensor  # (B, n_layers, M, d_model) banks after the last segment that held a real step
    slot_time: torch.Tensor  # (B, n_layers, M) token time of each slot's last write; -1: never written
    # output_attentions: per layer, (B, N, heads, T, T) maps of each segment over [bank M ; (R, o, a) x K ; write M],
    # T = 2M + 3K (row = query, column = key): a token's row holds two softmaxes, its read over the bank's
    # columns and its self-attention over the tokens' columns; a write row, slot m's attention over the tokens;
    # the bank's rows are no queries (zero)
    attentions: tuple[torch.Tensor, ...] | None = None


class ELMURModel(PreTrainedModel, ELMURRollouts, Policy):
    """ELMUR (arXiv 2510.07151): a decision transformer whose every layer keeps its own memory bank."""

    config_class = ELMURConfig
    base_model_prefix = "elmur"
    main_input_name = "observations"
    _no_split_modules = ["ELMURLayer"]

    def __init__(self, config: ELMURConfig):
        super().__init__(config)
        d, K = config.d_model, config.context_len
        self.discrete = config.num_actions is not None
        add_step_embeddings(self, config, d)
        self.position = PositionEmbedding(3 * K, d, config.position_embedding)
        self.memory = nn.Parameter(torch.zeros(config.n_layers, config.memory_size, d))  # learned initial banks
        self.drop = maybe_dropout(config.dropout)
        self.layers = nn.ModuleList(ELMURLayer(d, config.n_heads, config.dropout, config.memory_dropout,
                                               config.relative_range) for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, config.num_actions if self.discrete else config.act_dim)
        self.memory_hook = None  # set_memory_hook: the memory probe's intervention in act
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ELMURModel):
            init.normal_(module.memory, std=self.config.initializer_range)
        elif isinstance(module, PositionEmbedding) and module.learned:
            init.normal_(module.weight, std=self.config.initializer_range)
        elif isinstance(module, ELMURLayer):  # no distance preferred before training
            init.zeros_(module.bias.table.weight)

    @property
    def attention_layout(self) -> tuple[int, int, int]:
        """(K, M, C) of the attention maps' segment ``[bank M ; (R, o, a) x K ; write M]`` (no cache: C = 0)."""
        return self.config.context_len, self.config.memory_size, 0

    def attention_mask(self, step_mask: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, T) who may attend whom in segments of ``step_mask`` (B, K) real steps, in the maps' layout:
        tokens read every slot and see the real tokens up to their own; write slots see the real tokens."""
        B, K = step_mask.shape
        M, T = self.config.memory_size, 3 * K
        key_ok = step_mask.repeat_interleave(3, dim=1)
        allowed = step_mask.new_zeros(B, 2 * M + T, 2 * M + T)
        allowed[:, M:M + T, :M] = True
        allowed[:, M:M + T, M:M + T] = segment_mask(step_mask, 0)[:, 0]  # a DT segment's: causal, padding hidden
        allowed[:, M + T:, M:M + T] = (key_ok | ~key_ok.any(dim=1, keepdim=True))[:, None, :]
        return allowed[:, None]

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        out = self.head(self.ln_f(hidden))
        return out if self.discrete else torch.tanh(out)

    def initial_memory(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Banks (B, n_layers, M, d) and slot times (B, n_layers, M), all unwritten, of episodes starting now."""
        memory = self.memory.expand(batch_size, -1, -1, -1)
        return memory, torch.full(memory.shape[:3], -1, dtype=torch.long, device=memory.device)

    def forward(self, returns_to_go: torch.Tensor, observations: torch.Tensor, actions: torch.Tensor,
                mask: torch.Tensor | None = None, output_attentions: bool = False,
                timesteps: torch.Tensor | None = None,
                memory: tuple[torch.Tensor, torch.Tensor] | None = None) -> ELMUROutput:
        """Action predictions for every step of (B, L) windows, L = N * K, run segment by segment.

        ``mask`` (B, L) is True on real steps (padding on the right). The action at step t is predicted
        from its observation token's output, which never sees a_t. A segment without a real step
        leaves the banks as they were. ``timesteps`` is accepted for the common batch interface and
        unused (positions restart every segment; the banks keep their own token times). ``memory``:
        (banks, slot times) of an earlier window's output to continue from (None: the initial banks); this
        window's tokens then count on from the last write.
        """
        B, L = returns_to_go.shape
        K = self.config.context_len
        if L % K:
            raise ValueError(f"window length {L} is not a multiple of context_len K={K}")
        if mask is None:
            mask = torch.ones(B, L, dtype=torch.bool, device=returns_to_go.device)
        tokens = torch.stack([self.embed_return(returns_to_go), self.embed_obs(self.obs_norm(observations)),
                              self.embed_action(actions)], dim=2)
        tokens = rearrange(tokens, "b (n k) r d -> b n (k r) d", k=K)
        T = 3 * K
        clock = torch.arange(T, device=tokens.device).expand(B, T)
        memory, slot_time = self.initial_memory(B) if memory is None else memory
        clock = clock + (slot_time.amax(dim=(1, 2)) + 1).clamp_min(0)[:, None]  # after the last write
        preds = []
        attentions = [] if output_attentions else None
        for s in range(L // K):
            if s and self.config.grad_segments is not None and s % self.config.grad_segments == 0:
                memory = memory.detach()  # truncated backpropagation through memory
            step_mask = mask[:, s * K:(s + 1) * K]
            key_ok = step_mask.repeat_interleave(3, dim=1)
            real = key_ok.any(dim=1)
            self_mask = segment_mask(step_mask, 0)
            token_time = clock + s * T
            x = self.drop(tokens[:, s] + self.position(0, T))
            outputs, weights = [], []
            for i, layer in enumerate(self.layers):
                x, _, w = layer.tokens(x, memory[:, i], token_time, slot_time[:, i], self_mask,
                                       output_attentions=output_attentions)
                outputs.append(x)
                weights.append(w)
            # a segment of padding only writes nothing; its keys stay open so no softmax row is empty
            banks, times, writes = self._write_banks(memory, slot_time, outputs, token_time, key_ok | ~real[:, None],
                                                     output_attentions)
            memory = torch.where(real[:, None, None, None], banks, memory)
            slot_time = torch.where(real[:, None, None], times, slot_time)
            preds.append(self._head(x[:, 1::3]))
            if output_attentions:
                attentions.append([self._square(*w, write) for w, write in zip(weights, writes)])
        if output_attentions:  # per layer (B, N, heads, T, T)
            attentions = tuple(torch.stack(layer, dim=1) for layer in zip(*attentions))
        return ELMUROutput(action_preds=torch.cat(preds, dim=1), memory=memory, slot_time=slot_time,
                           attentions=attentions)

    def _write_banks(self, memory: torch.Tensor, slot_time: torch.Tensor, outputs, token_time: torch.Tensor,
                     key_ok: torch.Tensor | None = None, output_attentions: bool = False):
        """Every layer's bank after a segment: (B, n_layers, M, d) banks and (B, n_layers, M) slot times from
        the banks before it, each layer's ``outputs`` (B, 3K, d) of the segment's tokens at ``token_time``
        (B, 3K) (``key_ok``: the real ones; None: all) and per layer the write weights (None unless
        ``output_attentions``). The write's time is the segment's last token's."""
        banks, times, weights = [], [], []
        for i, (layer, x) in enumerate(zip(self.layers, outputs)):
            candidate, w = layer.candidate(memory[:, i], slot_time[:, i], x, token_time, key_ok,
                                           output_attentions=output_attentions)
            bank, time = lru_write(memory[:, i], slot_time[:, i], candidate, token_time[:, -1],
                                   self.config.lru_blend_alpha)
            banks.append(bank)
            times.append(time)
            weights.append(w)
        return torch.stack(banks, dim=1), torch.stack(times, dim=1), weights

    def _square(self, self_weights, read, write) -> torch.Tensor:
        """One layer's self-attention, read and write weights of a segment placed in the maps' (B, heads, T, T)."""
        M, T = self.config.memory_size, self_weights.shape[-1]
        square = self_weights.new_zeros(*self_weights.shape[:2], 2 * M + T, 2 * M + T)
        square[:, :, M:M + T, :M] = read
        square[:, :, M:M + T, M:M + T] = self_weights
        square[:, :, M + T:, M:M + T] = write
        return square

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross entropy (discrete) or MSE (continuous) averaged over the real steps of the batch."""
        preds = self(batch.returns_to_go, batch.observations, batch.actions, batch.mask).action_preds
        return action_loss(preds, batch.actions, batch.mask, self.discrete)
