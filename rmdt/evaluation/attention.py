"""Attention maps of RMDT and DT from the model's own outputs: ``forward(..., output_attentions=True)``.

A map is one segment's full square ``[cache C ; read M ; (R, o, a) x K ; write M]`` (cache keys: the
hidden-state cache, C = cache_len, never queries); row = query token, column = key token. Maps of a
dataset window come from one forward pass over it (``window_maps``). Maps of a rollout come from the
same forward pass over the recorded episode (``episode_maps``): ``act`` computes what the forward
pass computes (tested), so these are the weights the policy used when it acted, and the rollout runs
exactly as an evaluation does. The Memory Retention Valve's cross-attention is not part of the maps.
Pictures: rmdt.evaluation.attention_plots; export after an evaluation: rmdt.evaluation.attention_export.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rmdt.atomic import atomic_path

TOKEN_TYPES = ("read", "return", "observation", "action", "write", "cache")
READ, RETURN, OBSERVATION, ACTION, WRITE, CACHE = range(len(TOKEN_TYPES))
# label prefixes: m3 = read slot 3, o7 = observation of segment step 7, c0 = oldest cache slot
_SHORT = ("m", "R", "o", "a", "w", "c")


@dataclass
class AttentionMaps:
    """One episode's (or one dataset window's) attention, segment by segment."""

    weights: np.ndarray  # (S, n_layers, n_heads, T, T) float32 softmax weights; row = query, column = key
    allowed: np.ndarray  # (S, T, T) bool: the keys each query may attend (the model's segment mask)
    computed: np.ndarray  # (S, T) bool: rows that were run on real steps; other rows are all zero
    token_step: np.ndarray  # (S, T) int: episode step of each R, o, a token; -1 for memory tokens
    context_len: int  # K
    memory_tokens: int  # M
    cache_len: int = 0  # C: hidden-state cache keys in front of the segment's tokens

    @property
    def token_type(self) -> np.ndarray:
        """(T,) index into TOKEN_TYPES."""
        return token_layout(self.context_len, self.memory_tokens, self.cache_len)[0]

    @property
    def token_label(self) -> np.ndarray:
        """(T,) readable names: c0.. cache slots, m0.. read slots, R0 o0 a0 .. per segment step, w0.. write slots."""
        kind, slot = token_layout(self.context_len, self.memory_tokens, self.cache_len)
        return np.array([f"{_SHORT[k]}{s}" for k, s in zip(kind, slot)])

    def save(self, path: str | Path) -> None:
        """A compressed ``.npz`` with the maps, the token labels and the memory read/write summary."""
        read, write = memory_summary(self)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f, weights=self.weights, allowed=self.allowed, computed=self.computed,
                token_step=self.token_step, token_type=self.token_type, token_label=self.token_label,
                token_type_names=np.array(TOKEN_TYPES), context_len=self.context_len,
                memory_tokens=self.memory_tokens, cache_len=self.cache_len, read_mass=read, write_mass=write)

    @classmethod
    def load(cls, path: str | Path) -> "AttentionMaps":
        with np.load(path) as f:
            return cls(weights=f["weights"], allowed=f["allowed"], computed=f["computed"],
                       token_step=f["token_step"], context_len=int(f["context_len"]),
                       memory_tokens=int(f["memory_tokens"]),
                       cache_len=int(f["cache_len"]) if "cache_len" in f.files else 0)


def token_layout(context_len: int, memory_tokens: int, cache_len: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T,) token type and (T,) slot (cache or memory slot, or step within the segment) of a segment's tokens."""
    K, M, C = context_len, memory_tokens, cache_len
    kind = np.concatenate([np.full(C, CACHE), np.full(M, READ), np.tile([RETURN, OBSERVATION, ACTION], K),
                           np.full(M, WRITE)])
    slot = np.concatenate([np.arange(C), np.arange(M), np.repeat(np.arange(K), 3), np.arange(M)])
    return kind, slot


def trajectory_tokens(kind: np.ndarray) -> np.ndarray:
    """(T,) bool: the R, o, a tokens of a layout's ``kind``."""
    return (kind == RETURN) | (kind == OBSERVATION) | (kind == ACTION)


def has_attention(model) -> bool:
    """True for models that give attention maps (RMDT, DT, ELMUR): an ``attention_layout`` (K, M, C), an
    ``attention_mask(step_mask)`` (S, 1, T, T) of who may attend whom in a segment ``[read M ; (R, o, a) x K ;
    write M]``, and per-layer (B, N, heads, T, T) maps from ``forward(..., output_attentions=True)``."""
    return callable(getattr(model, "attention_mask", None)) and hasattr(model, "attention_layout")


def _check(model) -> None:
    if not has_attention(model):
        raise TypeError(f"{type(model).__name__} has no transformer blocks, so no attention maps "
                        "(RMDT, DT and ELMUR have them; recurrent models carry a state instead)")


def memory_summary(maps: AttentionMaps) -> tuple[np.ndarray, np.ndarray]:
    """How memory is read and written, per segment and layer (heads averaged).

    read (S, layers, M): mean weight that the real trajectory tokens put on each read slot.
    write (S, layers, M, len(TOKEN_TYPES)): the weight each write slot puts on each token type (rows sum to
    1 when the segment's write ran, else 0).
    """
    M, C = maps.memory_tokens, maps.cache_len
    w = maps.weights.mean(axis=2)  # (S, layers, T, T)
    kind = maps.token_type
    queries = maps.computed & trajectory_tokens(kind)[None]  # (S, T)
    count = np.maximum(queries.sum(axis=1), 1)[:, None, None]
    read = (w[:, :, :, C:C + M] * queries[:, None, :, None]).sum(axis=2) / count
    per_type = np.stack([w[:, :, -M:, kind == k].sum(axis=-1) for k in range(len(TOKEN_TYPES))], axis=-1) \
        if M else np.zeros((*w.shape[:2], 0, len(TOKEN_TYPES)), np.float32)
    return read.astype(np.float32), per_type.astype(np.float32)


def _allowed(mask: torch.Tensor, held: torch.Tensor, C: int, M: int, K: int) -> torch.Tensor:
    """(S, T, T) over ``[cache ; segment]`` from the segment mask (S, 1, T', T'): the last ``held`` (S,)
    cache slots are keys of the segment's trajectory tokens; cache rows are no queries."""
    from rmdt.models.hidden_cache import with_cache_columns

    if C == 0:
        return mask[:, 0]
    valid = torch.arange(C)[None, :] >= C - held[:, None]
    widened = with_cache_columns(mask, valid, M, K)[:, 0]  # (S, T', C + T')
    return torch.cat([torch.zeros(len(held), C, C + mask.shape[-1], dtype=torch.bool), widened], dim=1)


def _maps(model, weights: torch.Tensor, real: torch.Tensor, computed: torch.Tensor) -> AttentionMaps:
    """AttentionMaps of the first S segments of a window: ``weights`` (S, layers, heads, T, T) from the
    model, ``real`` (S, K) its real steps, ``computed`` (S, T) the rows to keep (the rest is zeroed)."""
    K, M, C = model.attention_layout
    S = len(real)
    _, trajectory, step = _layout(model.attention_layout)
    steps = torch.arange(S * K).view(S, K)[:, step]
    held = torch.clamp(3 * K * torch.arange(S), max=C)  # every earlier segment is whole: min(C, 3K s) cached
    allowed = _allowed(model.attention_mask(real), held, C, M, K)
    computed = computed & allowed.any(dim=-1)  # a row with no key to attend (ELMUR's bank slots) is no query
    return AttentionMaps(
        weights=torch.where(computed[:, None, None, :, None], weights.float().cpu(), 0.0).numpy(),
        allowed=allowed.numpy(), computed=computed.numpy(),
        token_step=torch.where(trajectory, steps, -1).numpy(), context_len=K, memory_tokens=M, cache_len=C)


@torch.no_grad()
def _forward_maps(model, returns_to_go, observations, actions, mask) -> torch.Tensor:
    """(B, N, layers, heads, T, T): every segment's attention from one eval-mode forward pass."""
    _check(model)
    was_training = model.training
    model.eval()
    try:
        out = model(returns_to_go, observations, actions, mask, output_attentions=True)
    finally:
        model.train(was_training)
    return torch.stack(out.attentions, dim=2).cpu()


def _layout(layout: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(T,) token type, (T,) bool trajectory token, (T,) its step within the segment (0 for other tokens),
    of a model's ``attention_layout`` (K, M, C)."""
    kind, slot = (torch.as_tensor(a) for a in token_layout(*layout))
    trajectory = torch.as_tensor(trajectory_tokens(kind.numpy()))
    return kind, trajectory, torch.where(trajectory, slot, 0)


def window_maps(model, returns_to_go, observations, actions, mask=None) -> list[AttentionMaps]:
    """The attention of the forward pass over (B, N*K) dataset windows, one AttentionMaps per row, over the
    segments that hold a real step (``mask`` (B, N*K), True on real steps; None: all real).

    A padded step is hidden by the mask, so the write rows of a partly real segment are real.
    """
    if mask is None:
        mask = torch.ones(returns_to_go.shape, dtype=torch.bool)
    weights = _forward_maps(model, returns_to_go, observations, actions, mask)
    kind, trajectory, step = _layout(model.attention_layout)
    out = []
    for b, row in enumerate(mask.cpu().view(len(mask), -1, model.config.context_len)):
        real = row[row.any(dim=1)]  # the real segments come first: padding is on the right
        computed = torch.where(trajectory, real[:, step], (kind == READ) | ((kind == WRITE) & real.any(dim=1)[:, None]))
        out.append(_maps(model, weights[b, :len(real)], real, computed))
    return out


def fed_tokens(layout: tuple[int, int, int], segments: int, length: int) -> torch.Tensor:
    """(S, T) bool: the tokens a rollout ran in the first ``segments`` segments of an episode of ``length`` steps.

    ``act`` feeds step t's R and o at step t and its action a_t at step t + 1, so the last action of
    the episode is never fed, nor (in a DT without a cache, whose segments carry nothing) the last
    action of each segment; a segment's write tokens run when the next segment starts (step (s + 1) K);
    its read tokens run when it starts; cache slots are keys only.
    """
    K, M, C = layout
    carried = bool(M or C)
    kind, trajectory, step = _layout(layout)
    t = torch.arange(segments * K).view(segments, K)[:, step]  # (S, T): episode step of each token
    action_fed = (t + 1 < length) & (carried | ((t + 1) % K != 0))
    written = ((torch.arange(segments) + 1) * K < length)[:, None]
    return torch.where(trajectory, torch.where(kind == ACTION, action_fed, t < length),
                       (kind == READ) | ((kind == WRITE) & written))


def episode_maps(model, episodes, device="cpu") -> list[AttentionMaps]:
    """The attention of recorded rollout episodes (rmdt.evaluation.rollout.Episode), one AttentionMaps each
    over its recorded steps, from one forward pass over them all; rows the rollout never ran are zero
    (``fed_tokens``). Episodes with no recorded step give no maps."""
    K = model.config.context_len
    episodes = [e for e in episodes if len(e.observations)]
    if not episodes:
        return []
    steps = [len(e.observations) for e in episodes]
    L = K * math.ceil(max(steps) / K)

    def padded(name):
        arrays = [np.asarray(getattr(e, name)) for e in episodes]
        out = np.zeros((len(arrays), L, *arrays[0].shape[1:]), arrays[0].dtype)
        for b, a in enumerate(arrays):
            out[b, :len(a)] = a
        return torch.as_tensor(out, device=device)

    mask = torch.arange(L)[None, :] < torch.tensor(steps)[:, None]
    weights = _forward_maps(model, padded("returns_to_go"), padded("observations"), padded("actions"),
                            mask.to(device))
    out = []
    for b, episode in enumerate(episodes):
        S = math.ceil(steps[b] / K)
        out.append(_maps(model, weights[b, :S], mask[b, :S * K].view(S, K),
                         fed_tokens(model.attention_layout, S, episode.length)))
    return out
