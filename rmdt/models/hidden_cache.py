"""RATE's hidden-state cache (Transformer-XL's ``mem_len``): the trajectory tokens of a segment also
attend to the detached per-layer hidden states of the last ``cache_len`` trajectory tokens before it.

What is cached at layer l is the input of block l (the residual stream before its LayerNorm), so the
block's own key/value projection (and its gradient) applies to the cache as to the segment; only the
hidden states are detached, as in Transformer-XL. Read and write memory tokens do not see the cache:
memory stays the one path that crosses the whole episode, the cache a short look back.

Positions: learned positions over ``[cache ; segment]``. The segment keeps its learned (or
sinusoidal) positions within the segment; every cached hidden state gets a learned embedding of its
cache slot (slot C-1 is the token just before the segment) added before the block's LayerNorm, at
every layer that reads it. Segments always start at slot 0 and the cache always holds the tokens
right before them, so each (query, key) pair has one fixed offset and absolute slot positions name
it exactly; Transformer-XL needs relative positions because its cached tokens would otherwise carry
the same absolute positions as the current ones, which the cache-slot embedding rules out here. This
keeps the fused attention path and the position embeddings of segments without a cache unchanged.
"""
from __future__ import annotations

import torch


def with_cache_columns(mask: torch.Tensor, valid: torch.Tensor, memory_tokens: int, context_len: int) -> torch.Tensor:
    """A segment mask (B, 1, T, T) over ``[read M ; 3K ; write M]`` widened to keys ``[cache C ; segment]``:
    (B, 1, T, C + T). Only trajectory queries see the cache, and only its ``valid`` (B, C) slots."""
    M, K = memory_tokens, context_len
    T = mask.shape[-1]
    query = torch.arange(T, device=mask.device)
    trajectory = (query >= M) & (query < M + 3 * K)
    cache = trajectory[None, None, :, None] & valid[:, None, None, :]
    return torch.cat([cache, mask.expand(valid.shape[0], -1, -1, -1)], dim=-1)


def cache_keys_values(blocks, hidden: torch.Tensor, position: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the keys/values (B, heads, C, d/heads) of cached hidden states ``hidden`` (B, layers, C, d)
    with the learned cache-slot ``position`` (C, d) added, through each block's LayerNorm and projection."""
    out = []
    for layer, block in enumerate(blocks):
        attn = block.attn
        k, v = attn.key_value(block.ln_1(hidden[:, layer] + position)).chunk(2, dim=-1)
        out.append((attn._heads(k), attn._heads(v)))
    return out


def roll(hidden: torch.Tensor, valid: torch.Tensor, new_hidden: torch.Tensor, new_valid: torch.Tensor):
    """The cache after a segment: the last C of ``[hidden ; new_hidden]`` along the token axis
    (hidden (B, layers, C, d), new_hidden (B, layers, 3K, d), valid (B, C), new_valid (B, 3K))."""
    C = hidden.shape[2]
    return (torch.cat([hidden, new_hidden.detach()], dim=2)[:, :, -C:],
            torch.cat([valid, new_valid], dim=1)[:, -C:])


def empty(batch: int, layers: int, cache_len: int, d_model: int, like: torch.Tensor):
    """An empty cache: zero hidden states (B, layers, C, d), no valid slot (B, C)."""
    return (like.new_zeros(batch, layers, cache_len, d_model),
            torch.zeros(batch, cache_len, dtype=torch.bool, device=like.device))
