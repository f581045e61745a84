"""ELMUR's configuration: everything needed to rebuild the model, written to config.json next to the weights.

``model_type`` "elmur" is what checkpoints name; a checkpoint writes every field, so it never depends
on today's defaults.
"""
from __future__ import annotations

from rmdt.models.embeddings import POSITION_EMBEDDINGS
from rmdt.models.policy_config import PolicyConfig


class ELMURConfig(PolicyConfig):
    """ELMUR: per-layer memory banks read and written by cross-attention, rewritten least recently used first."""

    model_type = "elmur"

    context_len: int = 30  # K: steps per segment (the data section's)
    memory_size: int = 4  # M: slots of each layer's memory bank
    d_model: int = 64  # width of every token and slot
    n_layers: int = 2  # layers, each with its own bank
    n_heads: int = 4  # heads of the self-, read and write attention; divides d_model
    # weight of the new write when a full bank's least recently used slot is rewritten (1: replace it);
    # a slot never written yet is always replaced
    lru_blend_alpha: float = 1.0
    memory_dropout: float = 0.0  # training only: dropout on each layer's candidate write
    # distances (in tokens) between a token and a slot's write time beyond which the learned read/write
    # bias is the same: the bias table has 2 * relative_range + 1 entries, plus one for unwritten slots
    relative_range: int = 1024
    grad_segments: int | None = None  # memory is detached every this many segments; None: gradient crosses all
    position_embedding: str = "learned"  # "learned" | "sinusoidal": positions within a segment
    initializer_range: float = 0.02  # std of the normal init of linear, embedding, position and memory weights

    def _validate(self) -> None:
        super()._validate()
        require, is_int = self.require, self.is_int
        for name in ("context_len", "memory_size", "n_layers", "n_heads", "relative_range"):
            require(is_int(getattr(self, name), 1), name, "an integer >= 1")
        require(is_int(self.d_model, 1) and self.d_model % self.n_heads == 0, "d_model",
                f"a positive integer divisible by n_heads={self.n_heads}")
        require(isinstance(self.lru_blend_alpha, (int, float)) and 0 < self.lru_blend_alpha <= 1,
                "lru_blend_alpha", "in (0, 1]")
        require(isinstance(self.memory_dropout, (int, float)) and 0 <= self.memory_dropout < 1, "memory_dropout",
                "in [0, 1)")
        require(self.grad_segments is None or is_int(self.grad_segments, 1), "grad_segments",
                "None or an integer >= 1")
        require(self.position_embedding in POSITION_EMBEDDINGS, "position_embedding",
                f"one of {list(POSITION_EMBEDDINGS)}", POSITION_EMBEDDINGS)
