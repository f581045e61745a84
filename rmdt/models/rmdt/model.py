"""RMDT's layers and its training forward: a window of N segments, run segment by segment.

Each segment is one transformer pass over ``[read M ; (R, o, a) x K ; write M]``; the write outputs
become the next segment's memory through the memory-update rule (rmdt.models.rmdt.memory_updates).
``cache_len`` C > 0 adds RATE's hidden-state cache (rmdt.models.hidden_cache). Training options:
memory replay and noise (augmentations of the memory between segments), truncated gradients through
memory (``grad_segments``) and per-segment activation checkpointing. Rollouts, one step at a time,
are the job of rmdt.models.rmdt.inference (and rmdt.models.rmdt.sliding for a sliding-window DT).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel
from transformers import initialization as init

from rmdt.models import hidden_cache
from rmdt.models.embeddings import ActionEmbedding, ObsNormalizer, PositionEmbedding, ReturnEmbedding, build_obs_encoder
from rmdt.models.policy import Policy, action_loss
from rmdt.models.rmdt.config import RMDTConfig
from rmdt.models.rmdt.inference import RMDTRollouts
from rmdt.models.rmdt.memory_updates import LAYER_NAMES, build_memory_update
from rmdt.models.transformer import Block, KVCache


@dataclass
class RMDTOutput:
    action_preds: torch.Tensor  # (B, L, num_actions) logits or (B, L, act_dim) actions in [-1, 1]
    memory: torch.Tensor  # (B, M, d_model) memory after the last segment that held a real step
    # output_attentions: per layer, (B, N, n_heads, T, T) softmax weights of each segment, T = C + 2M + 3K
    # over [cache C ; read M ; (R, o, a) x K ; write M] (row = query, column = key; cache rows are zero:
    # the cache only gives keys)
    attentions: tuple[torch.Tensor, ...] | None = None


def segment_mask(step_mask: torch.Tensor, memory_tokens: int) -> torch.Tensor:
    """Boolean attention mask (B, 1, T, T), True = may attend, for ``[read M ; 3K tokens ; write M]``.

    Read tokens see the read tokens only, trajectory tokens see all read tokens and are causal
    among themselves, write tokens see everything. Keys of padded steps (``step_mask`` False) are
    hidden from every query, so padding reaches neither real actions nor the next memory; the
    diagonal stays open so a padded query never has an empty row (NaN) when M = 0.
    """
    B, K = step_mask.shape
    M, device = memory_tokens, step_mask.device
    end, T = memory_tokens + 3 * K, 2 * memory_tokens + 3 * K
    i = torch.arange(T, device=device)[:, None]
    j = torch.arange(T, device=device)[None, :]
    static = (j < M) | ((j <= i) & (i >= M) & (j < end)) | (i >= end)
    ones = step_mask.new_ones(B, M)
    key_ok = torch.cat([ones, step_mask.repeat_interleave(3, dim=1), ones], dim=1)
    return ((static & key_ok[:, None, :]) | (i == j))[:, None]


class RMDTModel(PreTrainedModel, RMDTRollouts, Policy):
    """RMDT: segment-recurrent memory tokens around a GPT-style decision transformer."""

    config_class = RMDTConfig
    checkpointable_segments = True
    base_model_prefix = "rmdt"
    main_input_name = "observations"
    _no_split_modules = ["Block"]

    def __init__(self, config: RMDTConfig):
        super().__init__(config)
        d, K, M = config.d_model, config.context_len, config.memory_tokens
        self.discrete = config.num_actions is not None
        self.obs_norm = ObsNormalizer(config.obs_mean, config.obs_std)
        self.embed_obs = build_obs_encoder(config.obs_encoder, config.obs_shape, d)
        self.embed_return = ReturnEmbedding(d)
        self.embed_action = ActionEmbedding(d, config.num_actions, config.act_dim)
        self.position = PositionEmbedding(2 * M + 3 * K, d, config.position_embedding)
        self.memory = nn.Parameter(torch.zeros(M, d))  # learned initial memory m_1
        # Learned position of each hidden-state cache slot (rmdt.models.hidden_cache says why).
        self.cache_position = nn.Parameter(torch.zeros(config.cache_len, d)) if config.cache_len else None
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(d, config.n_heads, config.dropout, config.attn_dropout, config.feed_forward)
                                    for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(d)
        # The memory-update rule's layers (mrv, mrv_norm or gate; None where the rule has none) are the
        # model's own children, so state dicts name them as they always have; the rule is kept as its
        # bound forward, outside the module tree (a child module would prefix its parameters).
        rule = build_memory_update(config)
        for name in LAYER_NAMES:
            setattr(self, name, getattr(rule, name, None))
        self._update_memory = rule.forward  # (memory, write) -> next memory
        self.head = nn.Linear(d, config.num_actions if self.discrete else config.act_dim)
        self.memory_hook = None  # set_memory_hook: the memory probe's intervention in act
        # Training option (training.checkpoint_segments), not saved: each segment's activations are
        # recomputed in backward, so memory holds one segment's activations, not N.
        self.checkpoint_segments = False
        self.hook_cache = False  # set_memory_hook(cache=True): the intervention covers the hidden-state cache too
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RMDTModel):
            init.normal_(module.memory, std=1.0)  # the scale of later memories, which leave a LayerNorm
            if module.gate is not None:  # the gate starts nearly closed: memory is kept unless written
                init.constant_(module.gate.bias, self.config.gate_bias_init)
            if module.cache_position is not None:
                init.normal_(module.cache_position, std=self.config.initializer_range)
        elif isinstance(module, PositionEmbedding) and module.learned:
            init.normal_(module.weight, std=self.config.initializer_range)

    # ---- pieces shared by forward and act ----
    def _embed_steps(self, returns_to_go, observations, actions) -> torch.Tensor:
        """(B, L, 3, d): the R, o, a tokens of every step, in that order."""
        r = self.embed_return(returns_to_go)
        o = self.embed_obs(self.obs_norm(observations))
        return torch.stack([r, o, self.embed_action(actions)], dim=2)

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        out = self.head(hidden)
        return out if self.discrete else torch.tanh(out)

    def _run(self, x: torch.Tensor, mask, cache: list[KVCache | None], slots: torch.Tensor | None = None,
             inputs: list | None = None, rows: slice | torch.Tensor | None = None, output_attentions: bool = False):
        """All blocks and the final LayerNorm; returns outputs, the extended per-layer cache and the
        per-layer attention weights (``output_attentions``; else None). Appends each block's input to
        ``inputs`` if given (what the hidden-state cache keeps). ``rows``: the token positions whose
        outputs the final block computes (None: all)."""
        new_cache, weights = [], [] if output_attentions else None
        for i, (block, past) in enumerate(zip(self.blocks, cache)):
            if inputs is not None:
                inputs.append(x)
            x, kv, w = block(x, mask, past, slots, rows=rows if i == len(self.blocks) - 1 else None,
                             output_attentions=output_attentions)
            new_cache.append(kv)
            if output_attentions:
                weights.append(w)
        return self.ln_f(x), new_cache, weights

    # ---- training: a whole window ----
    def _segment(self, tokens: torch.Tensor, memory: torch.Tensor, step_mask: torch.Tensor, cache=None,
                 write_only: bool = False, output_attentions: bool = False):
        """One segment: (B, 3K, d) tokens -> (B, K, d) outputs of its observation tokens, the
        candidate next memory, the hidden-state cache after it (``cache``: (hidden (B, layers, C,
        d), valid (B, C)) or None) and the per-layer attention weights (B, heads, T, T) over
        ``[cache ; segment]`` (``output_attentions``; else None). ``write_only`` returns the candidate
        memory alone (what a memory replay needs). In training the final block computes only the
        outputs that are read (the observation and write tokens), unless attentions are asked for."""
        M, K = self.config.memory_tokens, self.config.context_len
        x = torch.cat([memory, tokens, memory], dim=1) + self.position(0, 2 * M + 3 * K)
        mask, past, inputs = segment_mask(step_mask, M), [None] * len(self.blocks), None
        if cache is not None:
            past = hidden_cache.cache_keys_values(self.blocks, cache[0], self.cache_position)
            mask = hidden_cache.with_cache_columns(mask, cache[1], M, K)
            inputs = None if write_only else []
        rows = (slice(M + 3 * K, None) if write_only else
                self._read_rows(x.device) if self.training and not output_attentions else None)
        x, _, weights = self._run(self.drop(x), mask, past, inputs=inputs, rows=rows,
                                  output_attentions=output_attentions and not write_only)
        if write_only:
            return self._update_memory(memory, x)
        if cache is not None:
            segment = torch.stack([h[:, M:M + 3 * K] for h in inputs], dim=1)
            cache = hidden_cache.roll(*cache, segment, step_mask.repeat_interleave(3, dim=1))
            if weights is not None:  # cache slots are keys only: zero query rows keep every map square
                weights = [torch.cat([w.new_zeros(*w.shape[:2], cache[1].shape[1], w.shape[-1]), w], dim=2)
                           for w in weights]
        obs, write = (x[:, :K], x[:, K:]) if rows is not None else (x[:, M + 1:M + 3 * K:3], x[:, M + 3 * K:])
        return obs, (self._update_memory(memory, write) if M else memory), cache, weights

    def _read_rows(self, device) -> torch.Tensor:
        """Positions of a segment's observation tokens, then its write tokens."""
        M, K = self.config.memory_tokens, self.config.context_len
        return torch.cat([M + 1 + 3 * torch.arange(K, device=device), M + 3 * K + torch.arange(M, device=device)])

    def forward(self, returns_to_go: torch.Tensor, observations: torch.Tensor, actions: torch.Tensor,
                mask: torch.Tensor | None = None, memory: torch.Tensor | None = None,
                output_attentions: bool = False) -> RMDTOutput:
        """Action predictions for every step of (B, L) windows, L = N * K, run segment by segment.

        ``mask`` (B, L) is True on real steps (padding on the right); ``memory`` (B, M, d) continues
        from an earlier window instead of the learned initial memory (the hidden-state cache starts
        empty at every window). The action at step t is predicted from the output of its observation
        token, which never sees a_t. ``output_attentions``: the output also holds every layer's
        attention weights, segment by segment (``RMDTOutput.attentions``).
        """
        B, L = returns_to_go.shape
        K, M, every = self.config.context_len, self.config.memory_tokens, self.config.grad_segments
        if L % K:
            raise ValueError(f"window length {L} is not a multiple of context_len K={K}")
        if mask is None:
            mask = torch.ones(B, L, dtype=torch.bool, device=returns_to_go.device)
        steps = rearrange(self._embed_steps(returns_to_go, observations, actions), "b (n k) r d -> b n (k r) d", k=K)
        memory = self.memory.expand(B, -1, -1) if memory is None else memory
        C = self.config.cache_len
        cache = hidden_cache.empty(B, len(self.blocks), C, steps.shape[-1], steps) if C else None
        segment = self._segment
        if self.checkpoint_segments and self.training and torch.is_grad_enabled():
            # The replay count and memory noise are drawn outside, so recomputation repeats only the
            # segment, whose dropout masks come back equal (checkpoint restores the RNG state).
            segment = partial(checkpoint, self._segment, use_reentrant=False)
        preds, attentions = [], []
        for s in range(L // K):
            if s and every is not None and s % every == 0:
                memory = memory.detach()  # truncated backpropagation through memory
            step_mask = mask[:, s * K:(s + 1) * K]
            out, new_memory, new_cache, weights = segment(steps[:, s], memory, step_mask, cache,
                                                          output_attentions=output_attentions)
            preds.append(self._head(out))
            attentions.append(weights)
            if self.training and self.config.memory_replay and M and s < L // K - 1:
                # Time-warp augmentation: the segment is written again, so later segments learn to
                # read a memory that has been updated more often than a window allows.
                for _ in range(int(torch.randint(self.config.memory_replay + 1, ()))):  # CPU RNG: no device sync
                    new_memory = segment(steps[:, s], new_memory, step_mask, cache, write_only=True)
            if self.training and self.config.memory_noise:
                # Perturbed memories teach attractors with wide basins, which slow drift cannot leave.
                new_memory = new_memory + self.config.memory_noise * torch.randn_like(new_memory)
            # A segment that is all padding (episode already over) leaves the memory as it was.
            memory = torch.where(step_mask.any(dim=1)[:, None, None], new_memory, memory)
            cache = new_cache
        if output_attentions:  # per layer: (B, N, heads, T, T)
            attentions = tuple(torch.stack(layer, dim=1) for layer in zip(*attentions))
        return RMDTOutput(action_preds=torch.cat(preds, dim=1), memory=memory,
                          attentions=attentions if output_attentions else None)

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross entropy (discrete) or MSE (continuous) averaged over the real steps of the batch."""
        preds = self(batch.returns_to_go, batch.observations, batch.actions, batch.mask).action_preds
        return action_loss(preds, batch.actions, batch.mask, self.discrete)
