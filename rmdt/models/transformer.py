"""A small pre-LayerNorm GPT block (nanoGPT style) whose attention takes an explicit boolean mask
and an optional key/value cache.

The mask is what makes RMDT: read, trajectory and write tokens see different parts of the segment
(see ``segment_mask`` in rmdt.models.rmdt.model), so attention never assumes a causal pattern itself.
The cache lets ``act`` run only the new tokens of a step. All attention, including the Memory
Retention Valve's cross-attention, goes through the one ``Attention`` class; asked with
``output_attentions=True`` it also returns its softmax weights (as Hugging Face models do).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KVCache = tuple[torch.Tensor, torch.Tensor]  # keys, values: (B, n_heads, T, d_model // n_heads)


def put_rows(cache: list[KVCache], index: torch.Tensor, rows: list[KVCache]) -> list[KVCache]:
    """Per-layer ``cache`` with the batch rows ``index`` replaced by ``rows`` (out of place)."""
    return [(k.index_copy(0, index, k2), v.index_copy(0, index, v2)) for (k, v), (k2, v2) in zip(cache, rows)]


def maybe_dropout(p: float) -> nn.Module:
    """``nn.Dropout(p)``, or no module at all for p = 0: a dropout of 0 is still one operator a call."""
    return nn.Dropout(p) if p else nn.Identity()


class Attention(nn.Module):
    """Multi-head attention of ``x`` over ``[past ; context]`` via scaled_dot_product_attention.

    ``context`` defaults to ``x`` (self-attention). ``mask``: bool, True where a query may attend, or a
    float bias added to the scores (-inf: may not attend), broadcastable to (B, n_heads, T_query, T_key);
    None means attend everywhere. Returns the
    output, the keys/values of ``[past ; context]`` for reuse as the next cache, and, when
    ``output_attentions``, the (B, n_heads, T_query, T_key) softmax weights (else None): the fused
    SDPA kernel hides them, so that call computes them explicitly (same outputs up to rounding).

    ``slots`` (B, T_query) int: ``past`` is then a fixed buffer of keys/values and each new token's
    are written into it, in place, at its own slot instead of appended, so rows of a batch can stand
    at different positions of their segments (rollouts whose episodes restart at different steps).

    ``dropout`` acts on the output (the residual branch), ``attn_dropout`` on the attention
    weights. Keep the latter 0 unless it is wanted: on CPU, SDPA with a mask and ``dropout_p > 0``
    leaves the fused kernel and draws a mask over every (B, heads, T, T) score tensor (six times
    the attention's cost and most of a training batch's memory at RATE's T-Maze setting).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float, attn_dropout: float = 0.0):
        super().__init__()
        self.n_heads, self.dropout = n_heads, attn_dropout
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.resid_drop = maybe_dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, heads, T, d / heads)."""
        return x.view(*x.shape[:2], self.n_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, past: KVCache | None = None,
                context: torch.Tensor | None = None, slots: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, KVCache, torch.Tensor | None]:
        q = self._heads(self.query(x))
        k, v = (self._heads(t) for t in self.key_value(x if context is None else context).chunk(2, dim=-1))
        if past is not None and slots is not None:
            index = slots[:, None, :, None].expand_as(k)
            # the buffer keeps its dtype (under autocast new keys arrive in bf16/fp16)
            k, v = past[0].scatter_(2, index, k.to(past[0].dtype)), past[1].scatter_(2, index, v.to(past[1].dtype))
        elif past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        weights = None
        if output_attentions:
            y, weights = self._attend_explicitly(q, k, v, mask)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                               dropout_p=self.dropout if self.training else 0.0)
        return self.resid_drop(self.proj(y.transpose(1, 2).flatten(2))), (k, v), weights

    def _attend_explicitly(self, q, k, v, mask) -> tuple[torch.Tensor, torch.Tensor]:
        """What SDPA computes, with the softmax weights made explicit: (output, weights)."""
        scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        if mask is not None and mask.is_floating_point():  # an additive bias
            scores = scores + mask
        elif mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: masked keys get exactly 0
        weights = scores.softmax(dim=-1)
        return F.dropout(weights, self.dropout, self.training) @ v, weights


class MLP(nn.Module):
    def __init__(self, d_model: int, dropout: float):
        super().__init__()
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.proj = nn.Linear(4 * d_model, d_model)
        self.drop = maybe_dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """x + attn(ln(x)), then x + mlp(ln(x)): one residual per sub-layer.

    ``feed_forward=False`` leaves the MLP out (attention-only blocks, the RATE reference's
    ``skip_dec_ffn``).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float, attn_dropout: float = 0.0,
                 feed_forward: bool = True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, n_heads, dropout, attn_dropout)
        self.ln_2 = nn.LayerNorm(d_model) if feed_forward else None
        self.mlp = MLP(d_model, dropout) if feed_forward else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, past: KVCache | None = None,
                slots: torch.Tensor | None = None, rows: slice | torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, KVCache, torch.Tensor | None]:
        """``rows`` (a slice or index of token positions): compute only those tokens' outputs (every
        token still gives its keys/values), for callers that read nothing else of the final block.
        Returns the output, the keys/values and (``output_attentions``) the attention weights."""
        h = self.ln_1(x)
        if rows is None:
            a, cache, weights = self.attn(h, mask, past, slots=slots, output_attentions=output_attentions)
        else:
            x = x[:, rows]
            a, cache, weights = self.attn(h[:, rows], None if mask is None else mask[..., rows, :], past, context=h,
                                          output_attentions=output_attentions)
        x = x + a
        return (x if self.mlp is None else x + self.mlp(self.ln_2(x))), cache, weights
