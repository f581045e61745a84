"""ELMUR, External Layer Memory with Update/Rewrite (Cherepanov, Kovalev and Panov, arXiv 2510.07151).

A decision transformer over (R, o, a) x K segments in which every layer keeps its own bank of M memory
slots that persists across segments. A layer's tokens read its bank through a cross-attention; after
the segment the slots attend to the layer's tokens and one slot is rewritten, the first unwritten one
or else the least recently written, by replacement or by blending with ``lru_blend_alpha``. Both
cross-attentions carry a learned bias by the distance between a token and its slot's write time.

Unlike the reference, gradients flow through the banks across all N segments by default
(``grad_segments`` truncates them), its feed-forward mixture of experts is a plain MLP, and the
initial banks are learned rather than drawn afresh for every batch.

Modules: ``config`` (ELMURConfig), ``layers`` (the layer, the relative bias and the LRU write),
``model`` (the training forward), ``inference`` (the per-row rollout state and engine).
"""
from rmdt.models.elmur.config import ELMURConfig
from rmdt.models.elmur.inference import ELMURState
from rmdt.models.elmur.layers import lru_write
from rmdt.models.elmur.model import ELMURModel, ELMUROutput

__all__ = ["ELMURConfig", "ELMURModel", "ELMUROutput", "ELMURState", "lru_write"]
