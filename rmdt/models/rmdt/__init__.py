"""Recurrent Memory Decision Transformer (RMDT / RATE, arXiv 2306.09459) and the plain DT.

A window of N*K steps is cut into N segments of K (return-to-go, observation, action) steps. Each
segment is one transformer pass over ``[read M ; (R, o, a) x K ; write M]``: the read slots hold
the incoming memory, the write slots hold it again (as in the reference) and their final outputs
become the next segment's memory, directly ("replace"), through the Memory Retention Valve
("mrv"; "mrv_residual" adds the write outputs back to the valve's output) or through a learned
gate that mixes them into the old memory ("gated"). With M = 0 the segments are independent and the
model is a Decision Transformer.
``cache_len`` C > 0 adds RATE's hidden-state cache (rmdt.models.hidden_cache): trajectory tokens
also attend to the detached hidden states of the last C trajectory tokens before their segment
(M = 0 with a cache is Transformer-XL).

Unlike the reference, gradients flow through the memory across all N segments by default (its
detach-and-step-per-segment training never trains the write path); ``grad_segments`` truncates
them so the difference can be measured.

Modules: ``config`` (RMDTConfig), ``memory_updates`` (the update rules), ``model`` (layers and the
training forward), ``inference`` (the per-row rollout state and engine), ``sliding`` (the
sliding-window DT rollout).
"""
from rmdt.models.rmdt.config import POSITION_EMBEDDINGS, RMDTConfig
from rmdt.models.rmdt.inference import RMDTState
from rmdt.models.rmdt.memory_updates import MEMORY_UPDATE_RULES, MEMORY_UPDATES
from rmdt.models.rmdt.model import RMDTModel, RMDTOutput, segment_mask

__all__ = ["MEMORY_UPDATE_RULES", "MEMORY_UPDATES", "POSITION_EMBEDDINGS", "RMDTConfig", "RMDTModel",
           "RMDTOutput", "RMDTState", "segment_mask"]
