"""RMDT's configuration: everything needed to rebuild the model, written to config.json next to the weights.

``model_type`` "rmdt" is what checkpoints name; the fields and their defaults are part of the
checkpoint format (a checkpoint writes every field, so it never depends on today's defaults).
"""
from __future__ import annotations

from transformers import PretrainedConfig

from rmdt.models.embeddings import POSITION_EMBEDDINGS
from rmdt.models.policy_config import PolicyConfigChecks
from rmdt.models.rmdt.memory_updates import MEMORY_UPDATES


class RMDTConfig(PolicyConfigChecks, PretrainedConfig):
    """Everything needed to rebuild the model, written to config.json next to the weights."""

    model_type = "rmdt"

    obs_shape: list[int] | None = None  # shape of one observation, e.g. [4] or [3, 64, 64]; required
    num_actions: int | None = None  # number of discrete actions; None for continuous actions
    act_dim: int | None = None  # size of a continuous action in [-1, 1]; None for discrete actions
    context_len: int = 30  # K: steps per segment
    memory_tokens: int = 8  # M: memory tokens carried between segments; 0 gives a plain DT
    # C: trajectory tokens also attend to the detached hidden states of the last C tokens before their
    # segment (RATE's mem_len)
    cache_len: int = 0
    d_model: int = 64  # width of every token
    n_layers: int = 2  # transformer blocks
    n_heads: int = 4  # attention heads of the blocks; divides d_model
    dropout: float = 0.0  # on embeddings and residual branches
    attn_dropout: float = 0.0  # on attention weights (blocks and valve); > 0 leaves SDPA's fused CPU kernel
    feed_forward: bool = True  # False: attention-only blocks (the reference's skip_dec_ffn)
    mrv_heads: int | None = None  # heads of the Memory Retention Valve; None: n_heads
    obs_encoder: str = "mlp"  # name in rmdt.models.embeddings.OBS_ENCODERS
    memory_update: str = "replace"  # "replace": write outputs are the next memory; "mrv": Memory Retention Valve;
    #                                   "mrv_residual": LN(write + valve); "gated": m + z * (write - m)
    grad_segments: int | None = None  # memory is detached every this many segments; None: gradient crosses all
    gate_bias_init: float = -3.0  # "gated" update: initial gate bias (sigmoid(-3) = 0.05 of the write gets in)
    memory_replay: int = 0  # training only: each segment but the last updates the memory 1 + U{0..this} times
    memory_noise: float = 0.0  # training only: std of Gaussian noise added to the memory after each segment
    position_embedding: str = "learned"  # "learned" | "sinusoidal": positions within a segment, no episode time
    # > 0: a learned embedding of the episode timestep (0 .. max_timestep - 1; later steps share the last) added to
    # each step's tokens, as the DT paper and d3rlpy do; 0: no episode time (any episode length, e.g. T-Maze's)
    max_timestep: int = 0
    # DT rollouts (memory_tokens 0): "segments" restarts the context every K steps; "sliding" keeps the
    # last K steps (the DT paper's play)
    dt_context: str = "segments"
    obs_mean: list | None = None  # observation mean (broadcast to obs_shape) from the dataset; None: 0
    obs_std: list | None = None  # observation std (broadcast to obs_shape) from the dataset; None: 1
    return_scale: float = 1.0  # returns-to-go are divided by this before they reach the model
    initializer_range: float = 0.02  # std of the normal init of linear, embedding and position weights

    def _validate(self) -> None:
        super()._validate()
        require, is_int = self.require, self.is_int
        require(is_int(self.context_len, 1), "context_len", "an integer >= 1")
        require(is_int(self.memory_tokens, 0), "memory_tokens", "an integer >= 0")
        require(is_int(self.cache_len, 0), "cache_len", "an integer >= 0")
        require(is_int(self.n_layers, 1), "n_layers", "an integer >= 1")
        require(is_int(self.n_heads, 1), "n_heads", "an integer >= 1")
        require(isinstance(self.attn_dropout, (int, float)) and 0 <= self.attn_dropout < 1, "attn_dropout",
                "in [0, 1)")
        require(isinstance(self.feed_forward, bool), "feed_forward", "true or false")
        require(self.mrv_heads is None or is_int(self.mrv_heads, 1) and self.d_model % self.mrv_heads == 0,
                "mrv_heads", f"None or a positive integer dividing d_model={self.d_model}")
        require(is_int(self.d_model, 1) and self.d_model % self.n_heads == 0, "d_model",
                f"a positive integer divisible by n_heads={self.n_heads}")
        require(self.memory_update in MEMORY_UPDATES, "memory_update", f"one of {list(MEMORY_UPDATES)}",
                MEMORY_UPDATES)
        require(self.grad_segments is None or is_int(self.grad_segments, 1), "grad_segments",
                "None or an integer >= 1")
        require(is_int(self.memory_replay, 0), "memory_replay", "an integer >= 0")
        require(is_int(self.max_timestep, 0), "max_timestep", "an integer >= 0 (0: no timestep embedding)")
        require(isinstance(self.memory_noise, (int, float)) and self.memory_noise >= 0, "memory_noise", ">= 0")
        require(isinstance(self.gate_bias_init, (int, float)), "gate_bias_init", "a number")
        require(self.position_embedding in POSITION_EMBEDDINGS, "position_embedding",
                f"one of {list(POSITION_EMBEDDINGS)}", POSITION_EMBEDDINGS)
        require(self.dt_context == "segments" or self.dt_context == "sliding" and self.memory_tokens == 0,
                "dt_context", "'segments', or 'sliding' with memory_tokens 0 (memory needs whole segments)")
        require(self.dt_context == "segments" or self.cache_len == 0, "dt_context",
                "'segments' when cache_len > 0 (the cache holds whole earlier segments)")
