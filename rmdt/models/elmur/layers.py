"""ELMUR's layer: a token track (self-attention, a read of the layer's memory bank, feed-forward) and a
memory track (the bank's slots attend to the layer's tokens, feed-forward, then one slot is rewritten,
least recently used first).

Positions: tokens carry learned (or sinusoidal) positions within their segment, as RMDT's do, so an
episode of any length runs; the memory cross-attentions add a learned per-head bias by the distance
in tokens between a token and the time its slot was last written (the paper's relative bias), with
one more entry for a slot never written. Distances beyond ``relative_range`` share the last entry.
"""
from __future__ import annotations

import torch
from torch import nn

from rmdt.models.transformer import MLP, Attention, KVCache, maybe_dropout


class RelativeBias(nn.Module):
    """(B, heads, Tq, Tk) additive attention bias from query and key times; unwritten slots (time < 0)
    take their own entry. The table starts at zero: a distance training never saw adds nothing."""

    def __init__(self, n_heads: int, max_distance: int):
        super().__init__()
        self.max_distance = max_distance
        self.table = nn.Embedding(2 * max_distance + 2, n_heads)

    def forward(self, query_time: torch.Tensor, key_time: torch.Tensor) -> torch.Tensor:
        """``query_time`` (B, Tq), ``key_time`` (B, Tk): integer token times, -1 for an unwritten slot."""
        R = self.max_distance
        index = (query_time[:, :, None] - key_time[:, None, :]).clamp(-R, R) + R
        unwritten = (query_time < 0)[:, :, None] | (key_time < 0)[:, None, :]
        index = torch.where(unwritten, 2 * R + 1, index)
        return self.table(index).permute(0, 3, 1, 2)


def lru_write(memory: torch.Tensor, slot_time: torch.Tensor, candidate: torch.Tensor, now: torch.Tensor,
              alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The bank after one write: the first unwritten slot takes its candidate whole; in a full bank the
    least recently written slot becomes ``alpha * candidate + (1 - alpha) * old``. Other slots keep
    their content.

    memory, candidate: (B, M, d); slot_time: (B, M) long, -1 unwritten; now: (B,) the write's time.
    Returns the new memory and slot times.
    """
    M = memory.shape[1]
    unwritten = slot_time < 0
    # unwritten slots rank first (lowest index first), then the oldest write; argmin takes the first minimum
    rank = torch.where(unwritten, torch.arange(M, device=slot_time.device) - M - 1, slot_time)
    target = nn.functional.one_hot(rank.argmin(-1), M).bool()
    weight = torch.where(unwritten, 1.0, alpha).to(memory.dtype)[..., None]
    blended = weight * candidate + (1 - weight) * memory
    return (torch.where(target[..., None], blended, memory),
            torch.where(target, now[:, None].to(slot_time.dtype), slot_time))


class ELMURLayer(nn.Module):
    """One layer; pre-LayerNorm residual sub-layers on both tracks."""

    def __init__(self, d_model: int, n_heads: int, dropout: float, memory_dropout: float, relative_range: int):
        super().__init__()
        self.ln_self, self.self_attn = nn.LayerNorm(d_model), Attention(d_model, n_heads, dropout)
        self.ln_read, self.ln_bank = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.read = Attention(d_model, n_heads, dropout)
        self.ln_mlp, self.mlp = nn.LayerNorm(d_model), MLP(d_model, dropout)
        self.ln_slots, self.ln_tokens = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.write = Attention(d_model, n_heads, dropout)
        self.ln_memory_mlp, self.memory_mlp = nn.LayerNorm(d_model), MLP(d_model, dropout)
        self.memory_drop = maybe_dropout(memory_dropout)
        self.bias = RelativeBias(n_heads, relative_range)

    def tokens(self, x: torch.Tensor, memory: torch.Tensor, token_time: torch.Tensor, slot_time: torch.Tensor,
               mask: torch.Tensor, past: KVCache | None = None, slots: torch.Tensor | None = None,
               output_attentions: bool = False):
        """Token track: (B, T, d) tokens at ``token_time`` (B, T) -> outputs, their self-attention
        keys/values and (``output_attentions``) the self-attention and read weights. ``mask``: who may
        attend whom among the tokens (``past``/``slots``: a rollout's slot buffer, as ``Attention``'s)."""
        a, kv, self_weights = self.self_attn(self.ln_self(x), mask, past, slots=slots,
                                             output_attentions=output_attentions)
        x = x + a
        r, _, read_weights = self.read(self.ln_read(x), self.bias(token_time, slot_time), context=self.ln_bank(memory),
                                       output_attentions=output_attentions)
        x = x + r
        return x + self.mlp(self.ln_mlp(x)), kv, (self_weights, read_weights)

    def candidate(self, memory: torch.Tensor, slot_time: torch.Tensor, tokens: torch.Tensor,
                  token_time: torch.Tensor, key_ok: torch.Tensor | None = None, output_attentions: bool = False):
        """Memory track: each slot of ``memory`` (B, M, d) attends to this layer's output ``tokens`` (B, T, d)
        (``key_ok`` (B, T): the real ones; None: all) -> the candidate writes (B, M, d) and the write weights."""
        bias = self.bias(slot_time, token_time)
        if key_ok is not None:
            bias = bias.masked_fill(~key_ok[:, None, None, :], float("-inf"))
        u, _, weights = self.write(self.ln_slots(memory), bias, context=self.ln_tokens(tokens),
                                   output_attentions=output_attentions)
        u = memory + u
        return self.memory_drop(u + self.memory_mlp(self.ln_memory_mlp(u))), weights
