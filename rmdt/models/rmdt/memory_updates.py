"""How a segment's write outputs become the next segment's memory: one small module per rule.

``MEMORY_UPDATE_RULES`` maps ``RMDTConfig.memory_update`` to its rule; each rule is called as
``rule(memory, write)`` with the memory the segment read and its write outputs, both (B, M, d), and
returns the next memory. A new rule is one class here and one entry in the dict.

The model registers a rule's layers as its own children, under the names in ``LAYER_NAMES`` (the
names RMDT checkpoints have always used: ``mrv.*``, ``mrv_norm.*``, ``gate.*``), so the rule itself is
not a child of the model and its parameters carry no extra prefix.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rmdt.models.transformer import Attention


class Replace(nn.Module):
    """The write outputs are the next memory (RATE's default)."""

    def __init__(self, config=None):
        super().__init__()

    def forward(self, memory: torch.Tensor, write: torch.Tensor) -> torch.Tensor:
        return write


class RetentionValve(nn.Module):
    """Memory Retention Valve: cross-attention from the old memory (queries) to ReLU(write outputs)
    (keys/values), normalised to the scale of every other memory."""

    residual = False

    def __init__(self, config):
        super().__init__()
        self.mrv = Attention(config.d_model, config.mrv_heads or config.n_heads, config.dropout, config.attn_dropout)
        # Write outputs leave ln_f; unnormalised, the valve's output starts ~100x smaller than the
        # memory it replaces and training stalls.
        self.mrv_norm = nn.LayerNorm(config.d_model)

    def forward(self, memory: torch.Tensor, write: torch.Tensor) -> torch.Tensor:
        kept = self.mrv(memory, context=F.relu(write))[0]
        return self.mrv_norm(kept + write if self.residual else kept)


class ResidualRetentionValve(RetentionValve):
    """LN(write + valve): the write outputs pass as with "replace" and the valve learns a correction,
    so the next segment never starts from M copies of one averaged vector."""

    residual = True


class Gated(nn.Module):
    """m' = m + z * (write - m), z = sigmoid(W [m ; write]) per memory channel. The model's weight
    init opens the gate to ``config.gate_bias_init`` (nearly closed: memory is kept unless written)."""

    def __init__(self, config):
        super().__init__()
        self.gate = nn.Linear(2 * config.d_model, config.d_model)

    def forward(self, memory: torch.Tensor, write: torch.Tensor) -> torch.Tensor:
        z = torch.sigmoid(self.gate(torch.cat([memory, write], dim=-1)))
        return memory + z * (write - memory)


MEMORY_UPDATE_RULES: dict[str, type[nn.Module]] = {
    "replace": Replace,
    "mrv": RetentionValve,
    "mrv_residual": ResidualRetentionValve,
    "gated": Gated,
}
MEMORY_UPDATES = tuple(MEMORY_UPDATE_RULES)
LAYER_NAMES = ("mrv", "mrv_norm", "gate")  # every layer a rule may own, in the order the model registers them


def build_memory_update(config) -> nn.Module:
    """The rule of ``config.memory_update``; ``replace`` (no layers) when the model has no memory tokens."""
    return MEMORY_UPDATE_RULES[config.memory_update if config.memory_tokens else "replace"](config)
