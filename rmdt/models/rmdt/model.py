"""RMDT's layers and its training forward: a window of N segments, run segment by segment.

Each segment is one transformer pass over ``[read M ; (R, o, a) x K ; write M]``; the write outputs
become the next segment's memory through the memory-update rule (rmdt.models.rmdt.memory_updates).
``cache_len`` C > 0 adds RATE's hidden-state cache (rmdt.models.hidden_cache). Training options:
memory replay and noise (augmentations of the memory between segments), truncated gradients through
memory (``grad_segments``) and per-segment activation checkpointing. Rollouts, one step at a time,
are the job of rmdt.models.rmdt.inference (and rmdt.models.rmdt.sliding for a sliding-window DT).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel
from transformers import initialization as init

from rmdt.models import hidden_cache
from rmdt.models.embeddings import PositionEmbedding, add_step_embeddings
from rmdt.models.policy import Policy, action_loss
from rmdt.models.rmdt.config import RMDTConfig
from rmdt.models.rmdt.inference import RMDTRollouts
from rmdt.models.rmdt.memory_updates import LAYER_NAMES, build_memory_update
from rmdt.models.transformer import Block, KVCache, maybe_dropout


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
    static, diagonal = _mask_layout(memory_tokens, K, step_mask.device)
    key_ok = F.pad(step_mask[:, :, None].expand(B, K, 3).reshape(B, 1, 1, 3 * K), (memory_tokens, memory_tokens),
                   value=True)
    return (static & key_ok) | diagonal


@functools.lru_cache(maxsize=256)
def _mask_layout(M: int, K: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The parts of ``segment_mask`` that depend only on M and K: (T, T) who may see whom, and the
    diagonal. Made once per layout and device: rebuilding them is a dozen small operators a segment."""
    with torch.inference_mode(False):
        end, T = M + 3 * K, 2 * M + 3 * K
        i = torch.arange(T, device=device)[:, None]
        j = torch.arange(T, device=device)[None, :]
        return (j < M) | ((j <= i) & (i >= M) & (j < end)) | (i >= end), i == j


@functools.lru_cache(maxsize=256)
def _output_rows(M: int, K: int, device: torch.device) -> torch.Tensor:
    """Positions of a segment's observation tokens, then its write tokens (what training reads)."""
    with torch.inference_mode(False):
        return torch.cat([M + 1 + 3 * torch.arange(K, device=device), M + 3 * K + torch.arange(M, device=device)])


def compaction(mask: torch.Tensor, K: int) -> list[tuple[torch.Tensor | None, int]] | None:
    """What each segment of ``mask`` (R, N * K) needs computed: ``(rows, k)``, the rows with a real
    step (None: all) and the leading steps that hold every real one (0: none). Padded rows and
    trailing padded steps change no real output (their keys are hidden from every other query), so
    dropping them changes only the work. CPU tensors only: elsewhere the answer would cost a device
    sync and shapes that change from step to step (None: compute everything)."""
    if mask.device.type != "cpu":
        return None
    by_segment = mask.view(mask.shape[0], -1, K)
    plan = []
    for rows, steps in zip(by_segment.any(2).T.tolist(), by_segment.any(0).tolist()):
        k = max((i + 1 for i, real in enumerate(steps) if real), default=0)
        index = None if all(rows) else torch.tensor([r for r, real in enumerate(rows) if real], dtype=torch.long)
        plan.append((index, k))
    return plan


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
        add_step_embeddings(self, config, d)
        self.position = PositionEmbedding(2 * M + 3 * K, d, config.position_embedding)
        self.timestep = nn.Embedding(config.max_timestep, d) if config.max_timestep else None
        self.memory = nn.Parameter(torch.zeros(M, d))  # learned initial memory m_1
        # Learned position of each hidden-state cache slot (rmdt.models.hidden_cache says why).
        self.cache_position = nn.Parameter(torch.zeros(config.cache_len, d)) if config.cache_len else None
        self.drop = maybe_dropout(config.dropout)
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

    @property
    def attention_layout(self) -> tuple[int, int, int]:
        """(K, M, C) of the attention maps' segment ``[cache C ; read M ; (R, o, a) x K ; write M]``."""
        return self.config.context_len, self.config.memory_tokens, self.config.cache_len

    def attention_mask(self, step_mask: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, T) who may attend whom in segments of ``step_mask`` (B, K) real steps (``segment_mask``)."""
        return segment_mask(step_mask, self.config.memory_tokens)

    # ---- pieces shared by forward and act ----
    def _embed_steps(self, returns_to_go, observations, actions, timesteps) -> torch.Tensor:
        """(B, L, 3, d): the R, o, a tokens of every step, in that order."""
        r = self.embed_return(returns_to_go)
        o = self.embed_obs(self.obs_norm(observations))
        tokens = torch.stack([r, o, self.embed_action(actions)], dim=2)
        return tokens if self.timestep is None else tokens + self._episode_time(timesteps)[:, :, None]

    def _episode_time(self, timesteps) -> torch.Tensor:
        """Embeddings of episode timesteps (any shape; later steps than the table share its last row)."""
        return self.timestep(torch.as_tensor(timesteps, device=self.timestep.weight.device)
                             .clamp(0, self.config.max_timestep - 1))

    def _act_time(self, time: np.ndarray) -> torch.Tensor:
        """(B, 3, d) episode-time embeddings of the tokens a rollout step adds at each row's timestep ``time``:
        the previous action (step t-1's token), then R and o (step t's)."""
        return self._episode_time(np.stack([np.maximum(time - 1, 0), time, time], 1))

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
        """One segment: (B, 3k, d) tokens of its first k <= K steps -> (B, k, d) outputs of its
        observation tokens, the candidate next memory, the hidden-state cache after it (``cache``:
        (hidden (B, layers, C, d), valid (B, C)) or None) and the per-layer attention weights (B,
        heads, T, T) over ``[cache ; segment]`` (``output_attentions``; else None). The steps after
        the k-th (all padding) keep their place: write tokens sit at their positions for K steps.
        ``write_only`` returns the candidate memory alone (what a memory replay needs). In training
        the final block computes only the outputs that are read (the observation and write tokens),
        unless attentions are asked for."""
        M, K, k = self.config.memory_tokens, self.config.context_len, step_mask.shape[1]
        x = torch.cat([memory, tokens, memory], dim=1) + self._positions(k)
        mask, past, inputs = segment_mask(step_mask, M), [None] * len(self.blocks), None
        if cache is not None:
            past = hidden_cache.cache_keys_values(self.blocks, cache[0], self.cache_position)
            mask = hidden_cache.with_cache_columns(mask, cache[1], M, k)
            inputs = None if write_only else []
        rows = (slice(M + 3 * k, None) if write_only else
                _output_rows(M, k, x.device) if self.training and not output_attentions else None)
        x, _, weights = self._run(self.drop(x), mask, past, inputs=inputs, rows=rows,
                                  output_attentions=output_attentions and not write_only)
        if write_only:
            return self._update_memory(memory, x)
        if cache is not None:
            segment = torch.stack([h[:, M:M + 3 * k] for h in inputs], dim=1)
            valid = step_mask.repeat_interleave(3, dim=1)
            if k < K:  # the untaken steps enter the cache as the padding they are
                segment, valid = F.pad(segment, (0, 0, 0, 3 * (K - k))), F.pad(valid, (0, 3 * (K - k)))
            cache = hidden_cache.roll(*cache, segment, valid)
            if weights is not None:  # cache slots are keys only: zero query rows keep every map square
                weights = [torch.cat([w.new_zeros(*w.shape[:2], cache[1].shape[1], w.shape[-1]), w], dim=2)
                           for w in weights]
        obs, write = (x[:, :k], x[:, k:]) if rows is not None else (x[:, M + 1:M + 3 * k:3], x[:, M + 3 * k:])
        return obs, (self._update_memory(memory, write) if M else memory), cache, weights

    def _positions(self, k: int) -> torch.Tensor:
        """Position embeddings of ``[read M ; (R, o, a) x k ; write M]``, write tokens where K steps put them."""
        M, K = self.config.memory_tokens, self.config.context_len
        if k == K:
            return self.position(0, 2 * M + 3 * K)
        return torch.cat([self.position(0, M + 3 * k), self.position(M + 3 * K, 2 * M + 3 * K)])

    def forward(self, returns_to_go: torch.Tensor, observations: torch.Tensor, actions: torch.Tensor,
                mask: torch.Tensor | None = None, memory: torch.Tensor | None = None,
                output_attentions: bool = False, timesteps: torch.Tensor | None = None) -> RMDTOutput:
        """Action predictions for every step of (B, L) windows, L = N * K, run segment by segment.

        ``mask`` (B, L) is True on real steps (padding on the right); ``memory`` (B, M, d) continues
        from an earlier window instead of the learned initial memory (the hidden-state cache starts
        empty at every window). The action at step t is predicted from the output of its observation
        token, which never sees a_t; predictions at padded steps are meaningless (zero where the
        work was skipped). ``output_attentions``: the output also holds every layer's attention
        weights, segment by segment (``RMDTOutput.attentions``). ``timesteps`` (B, L): each step's episode
        timestep, read with ``max_timestep`` > 0 (None: windows that start their episodes, 0 .. L-1).
        """
        B, L = returns_to_go.shape
        K, M, C = self.config.context_len, self.config.memory_tokens, self.config.cache_len
        if L % K:
            raise ValueError(f"window length {L} is not a multiple of context_len K={K}")
        if mask is None:
            mask = torch.ones(B, L, dtype=torch.bool, device=returns_to_go.device)
        if timesteps is None and self.timestep is not None:
            timesteps = torch.arange(L, device=returns_to_go.device).expand(B, L)
        steps = self._embed_steps(returns_to_go, observations, actions, timesteps)
        steps = rearrange(steps, "b (n k) r d -> b n (k r) d", k=K)
        memory = self.memory.expand(B, -1, -1) if memory is None else memory
        segment = self._segment
        recompute = self.checkpoint_segments and self.training and torch.is_grad_enabled()
        if recompute:
            # The replay count and memory noise are drawn outside, so recomputation repeats only the
            # segment, whose dropout masks come back equal (checkpoint restores the RNG state).
            segment = partial(checkpoint, self._segment, use_reentrant=False)
        if not M and not C and not output_attentions and not recompute:
            # Without memory or cache the segments of a window do not depend on each other: one pass
            # over all B * N of them.
            rows_mask = mask.view(-1, K)
            plan = (compaction(rows_mask, K) or [None])[0]
            preds = self._window_segments(segment, steps.flatten(0, 1), self.memory.expand(B * L // K, -1, -1),
                                          rows_mask, None, plan)[0]
            return RMDTOutput(action_preds=preds.view(B, L, -1), memory=memory)
        cache = hidden_cache.empty(B, len(self.blocks), C, steps.shape[-1], steps) if C else None
        plan = None if output_attentions else compaction(mask, K)
        preds, attentions = [], []
        for s in range(L // K):
            if s and self.config.grad_segments is not None and s % self.config.grad_segments == 0:
                memory = memory.detach()  # truncated backpropagation through memory
            pred, memory, cache, weights = self._window_segments(
                segment, steps[:, s], memory, mask[:, s * K:(s + 1) * K], cache, plan and plan[s],
                replay=s < L // K - 1, output_attentions=output_attentions)
            preds.append(pred)
            attentions.append(weights)
        if output_attentions:  # per layer: (B, N, heads, T, T)
            attentions = tuple(torch.stack(layer, dim=1) for layer in zip(*attentions))
        return RMDTOutput(action_preds=torch.cat(preds, dim=1), memory=memory,
                          attentions=attentions if output_attentions else None)

    def _window_segments(self, segment, tokens, memory, step_mask, cache, plan, replay: bool = False,
                         output_attentions: bool = False):
        """One segment of every row (or, for a DT, every segment of every row at once): (B, K,
        outputs) predictions, the memory and cache after it, the attention weights. ``plan``, the
        segment's (rows, k) of ``compaction``, drops the padded work (None: compute everything)."""
        rows, k = plan if plan else (None, step_mask.shape[1])
        B, K, M = step_mask.shape[0], step_mask.shape[1], self.config.memory_tokens
        part = (lambda t: t) if rows is None else (lambda t: t.index_select(0, rows))  # noqa: E731
        new_memory, new_cache, weights = part(memory), None, None
        if k:
            sub_tokens, sub_mask = part(tokens[:, :3 * k]), part(step_mask[:, :k])
            sub_cache = None if cache is None else (part(cache[0]), part(cache[1]))
            out, new_memory, new_cache, weights = segment(sub_tokens, part(memory), sub_mask, sub_cache,
                                                          output_attentions=output_attentions)
            pred = self._head(out) if k == K else F.pad(self._head(out), (0, 0, 0, K - k))
        else:  # nothing real in this segment: no work, no change
            pred = tokens.new_zeros(len(new_memory), K, self.head.out_features)
        if self.training and self.config.memory_replay and M and replay:
            # Time-warp augmentation: the segment is written again, so later segments learn to
            # read a memory that has been updated more often than a window allows.
            replays = int(torch.randint(self.config.memory_replay + 1, ()))  # CPU RNG: no device sync
            for _ in range(replays if k else 0):  # drawn even for a segment of padding: the same random stream
                new_memory = segment(sub_tokens, new_memory, sub_mask, sub_cache, write_only=True)
        if self.training and self.config.memory_noise:
            # Perturbed memories teach attractors with wide basins, which slow drift cannot leave.
            new_memory = new_memory + self.config.memory_noise * part(torch.randn_like(memory))
        if rows is not None:
            pred = pred.new_zeros(B, *pred.shape[1:]).index_copy(0, rows, pred)
        if plan is None:  # a segment that is all padding (episode already over) leaves the memory as it was
            memory = torch.where(step_mask.any(dim=1)[:, None, None], new_memory, memory)
        elif k:
            memory = new_memory if rows is None else memory.index_copy(0, rows, new_memory)
        if cache is not None:
            cache = new_cache if rows is None and k else self._merge_cache(cache, new_cache, rows, K)
        return pred, memory, cache, weights

    def _merge_cache(self, cache, new_cache, rows, K: int):
        """The cache of every row after a segment of which only ``rows`` were computed (``new_cache``):
        the others roll in 3K padded tokens, as the full computation would."""
        B, layers, _, d = cache[0].shape
        rolled = hidden_cache.roll(*cache, cache[0].new_zeros(B, layers, 3 * K, d),
                                   cache[1].new_zeros(B, 3 * K))
        if new_cache is None:
            return rolled
        return rolled[0].index_copy(0, rows, new_cache[0]), rolled[1].index_copy(0, rows, new_cache[1])

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross entropy (discrete) or MSE (continuous) averaged over the real steps of the batch."""
        preds = self(batch.returns_to_go, batch.observations, batch.actions, batch.mask,
                     timesteps=batch.timesteps).action_preds
        return action_loss(preds, batch.actions, batch.mask, self.discrete)
