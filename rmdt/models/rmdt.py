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
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init

from rmdt.models import hidden_cache
from rmdt.models.embeddings import ActionEmbedding, ObsNormalizer, PositionEmbedding, ReturnEmbedding, build_obs_encoder
from rmdt.models.policy import Policy, action_loss
from rmdt.models.policy_config import PolicyConfigChecks
from rmdt.models.transformer import Attention, Block, KVCache

MEMORY_UPDATES = ("replace", "mrv", "mrv_residual", "gated")
POSITION_EMBEDDINGS = ("learned", "sinusoidal")


class RMDTConfig(PolicyConfigChecks, PretrainedConfig):
    """Everything needed to rebuild the model, written to config.json next to the weights."""

    model_type = "rmdt"

    obs_shape: list[int] | None = None  # shape of one observation, e.g. [4] or [3, 64, 64]; required
    num_actions: int | None = None  # number of discrete actions; None for continuous actions
    act_dim: int | None = None  # size of a continuous action in [-1, 1]; None for discrete actions
    context_len: int = 30  # K: steps per segment
    memory_tokens: int = 8  # M: memory tokens carried between segments; 0 gives a plain DT
    cache_len: int = 0  # C: trajectory tokens also attend to the detached hidden states of the last C tokens before their segment (RATE's mem_len)
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
    dt_context: str = "segments"  # DT rollouts (memory_tokens 0): "segments" restarts the context every K steps; "sliding" keeps the last K steps (the DT paper's play)
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
        require(self.memory_update in MEMORY_UPDATES, "memory_update", f"one of {list(MEMORY_UPDATES)}", MEMORY_UPDATES)
        require(self.grad_segments is None or is_int(self.grad_segments, 1), "grad_segments",
                "None or an integer >= 1")
        require(is_int(self.memory_replay, 0), "memory_replay", "an integer >= 0")
        require(isinstance(self.memory_noise, (int, float)) and self.memory_noise >= 0, "memory_noise", ">= 0")
        require(isinstance(self.gate_bias_init, (int, float)), "gate_bias_init", "a number")
        require(self.position_embedding in POSITION_EMBEDDINGS, "position_embedding",
                f"one of {list(POSITION_EMBEDDINGS)}", POSITION_EMBEDDINGS)
        require(self.dt_context == "segments" or self.dt_context == "sliding" and self.memory_tokens == 0,
                "dt_context", "'segments', or 'sliding' with memory_tokens 0 (memory needs whole segments)")
        require(self.dt_context == "segments" or self.cache_len == 0, "dt_context",
                "'segments' when cache_len > 0 (the cache holds whole earlier segments)")


@dataclass
class RMDTOutput:
    action_preds: torch.Tensor  # (B, L, num_actions) logits or (B, L, act_dim) actions in [-1, 1]
    memory: torch.Tensor  # (B, M, d_model) memory after the last segment that held a real step


@dataclass
class RMDTState:
    """Rollout state of ``act``, per row: each environment is at its own step of its own segment.

    ``step`` lives on the host: the rollout decides every restart, so the model knows which rows
    cross a segment boundary without waiting for the device.
    """

    memory: torch.Tensor  # (B, M, d_model) memory read by each row's current segment
    cache: list[KVCache]  # per layer, keys/values (B, heads, C + M + 3K + 1, d/heads) by slot: hidden-state cache, then the segment; the last slot is scratch
    step: np.ndarray  # (B,) int64: steps of the current segment already taken, 0..K ("sliding": of the episode)
    window: torch.Tensor | None = None  # dt_context "sliding": (B, 3K-1, d) token embeddings of the last steps, right-aligned
    cache_hidden: torch.Tensor | None = None  # cache_len C > 0: (B, layers, C, d) detached hidden states of the last C tokens before the segment
    cache_valid: torch.Tensor | None = None  # (B, C) bool: cache slots that hold a token of this episode
    segment_hidden: torch.Tensor | None = None  # (B, layers, 3K + 1, d) block inputs of the segment's tokens by slot (last: scratch)


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


def _put_rows(cache: list[KVCache], index: torch.Tensor, rows: list[KVCache]) -> list[KVCache]:
    """``cache`` with the batch rows ``index`` replaced by ``rows`` (out of place)."""
    return [(k.index_copy(0, index, k2), v.index_copy(0, index, v2)) for (k, v), (k2, v2) in zip(cache, rows)]


class RMDTModel(PreTrainedModel, Policy):
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
        # Memory Retention Valve: queries = previous memory, keys/values = ReLU(write outputs).
        self.mrv = (Attention(d, config.mrv_heads or config.n_heads, config.dropout, config.attn_dropout)
                    if M and config.memory_update.startswith("mrv") else None)
        # The valve's output is normalised to the scale of every other memory (write outputs leave
        # ln_f); unnormalised it starts ~100x smaller than the memory it replaces and training stalls.
        self.mrv_norm = nn.LayerNorm(d) if self.mrv is not None else None
        # Gated update: m' = m + z * (write - m), z = sigmoid(W [m ; write]), per memory channel.
        self.gate = nn.Linear(2 * d, d) if M and config.memory_update == "gated" else None
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

    def _update_memory(self, memory: torch.Tensor, write: torch.Tensor) -> torch.Tensor:
        if self.mrv is not None:
            kept = self.mrv(memory, context=F.relu(write))[0]
            # residual: the write outputs pass as with "replace" and the valve learns a correction,
            # so the next segment never starts from M copies of one averaged vector (README, MRV)
            return self.mrv_norm(kept + write if self.config.memory_update == "mrv_residual" else kept)
        if self.gate is not None:
            z = torch.sigmoid(self.gate(torch.cat([memory, write], dim=-1)))
            return memory + z * (write - memory)
        return write

    def _run(self, x: torch.Tensor, mask, cache: list[KVCache | None], slots: torch.Tensor | None = None,
             inputs: list | None = None, rows: slice | torch.Tensor | None = None):
        """All blocks and the final LayerNorm; returns outputs and the extended per-layer cache
        (and appends each block's input to ``inputs`` if given: what the hidden-state cache keeps).
        ``rows``: the token positions whose outputs the final block computes (None: all)."""
        new_cache = []
        for i, (block, past) in enumerate(zip(self.blocks, cache)):
            if inputs is not None:
                inputs.append(x)
            x, kv = block(x, mask, past, slots, rows=rows if i == len(self.blocks) - 1 else None)
            new_cache.append(kv)
        return self.ln_f(x), new_cache

    # ---- training: a whole window ----
    def _segment(self, tokens: torch.Tensor, memory: torch.Tensor, step_mask: torch.Tensor, cache=None,
                 write_only: bool = False):
        """One segment: (B, 3K, d) tokens -> (B, K, d) outputs of its observation tokens, the
        candidate next memory and the hidden-state cache after it (``cache``: (hidden (B, layers, C,
        d), valid (B, C)) or None). ``write_only`` returns the candidate memory alone (what a memory
        replay needs). In training the final block computes only the outputs that are read (the
        observation and write tokens); in eval mode it computes all, so attention capture sees
        whole maps."""
        M, K = self.config.memory_tokens, self.config.context_len
        x = torch.cat([memory, tokens, memory], dim=1) + self.position(0, 2 * M + 3 * K)
        mask, past, inputs = segment_mask(step_mask, M), [None] * len(self.blocks), None
        if cache is not None:
            past = hidden_cache.cache_keys_values(self.blocks, cache[0], self.cache_position)
            mask = hidden_cache.with_cache_columns(mask, cache[1], M, K)
            inputs = None if write_only else []
        rows = (slice(M + 3 * K, None) if write_only else
                self._read_rows(x.device) if self.training else None)
        x, _ = self._run(self.drop(x), mask, past, inputs=inputs, rows=rows)
        if write_only:
            return self._update_memory(memory, x)
        if cache is not None:
            segment = torch.stack([h[:, M:M + 3 * K] for h in inputs], dim=1)
            cache = hidden_cache.roll(*cache, segment, step_mask.repeat_interleave(3, dim=1))
        obs, write = (x[:, :K], x[:, K:]) if rows is not None else (x[:, M + 1:M + 3 * K:3], x[:, M + 3 * K:])
        return obs, (self._update_memory(memory, write) if M else memory), cache

    def _read_rows(self, device) -> torch.Tensor:
        """Positions of a segment's observation tokens, then its write tokens."""
        M, K = self.config.memory_tokens, self.config.context_len
        return torch.cat([M + 1 + 3 * torch.arange(K, device=device), M + 3 * K + torch.arange(M, device=device)])

    def forward(self, returns_to_go: torch.Tensor, observations: torch.Tensor, actions: torch.Tensor,
                mask: torch.Tensor | None = None, memory: torch.Tensor | None = None) -> RMDTOutput:
        """Action predictions for every step of (B, L) windows, L = N * K, run segment by segment.

        ``mask`` (B, L) is True on real steps (padding on the right); ``memory`` (B, M, d) continues
        from an earlier window instead of the learned initial memory (the hidden-state cache starts
        empty at every window). The action at step t is predicted from the output of its observation
        token, which never sees a_t.
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
        preds = []
        for s in range(L // K):
            if s and every is not None and s % every == 0:
                memory = memory.detach()  # truncated backpropagation through memory
            step_mask = mask[:, s * K:(s + 1) * K]
            out, new_memory, new_cache = segment(steps[:, s], memory, step_mask, cache)
            preds.append(self._head(out))
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
        return RMDTOutput(action_preds=torch.cat(preds, dim=1), memory=memory)

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Cross entropy (discrete) or MSE (continuous) averaged over the real steps of the batch."""
        preds = self(batch.returns_to_go, batch.observations, batch.actions, batch.mask).action_preds
        return action_loss(preds, batch.actions, batch.mask, self.discrete)

    # ---- rollouts: one step at a time, O(K + C) per step, every row at its own position ----
    # A row's cache is a fixed buffer indexed by slot: the hidden-state cache's keys/values at
    # 0..C-1, read tokens at C..C+M-1, step s's a_{s-1}, R_s, o_s at C+M+3s-1 .. C+M+3s+1, and one
    # scratch slot at C+M+3K for the "previous action" of a segment's first step (it has none). Each
    # segment token sees the segment slots up to its own (and trajectory tokens the valid cache
    # slots), so stale entries of an earlier segment beyond a row's position are never read. A step
    # writes its keys/values (and block inputs) into the buffers in place (copying them would double
    # the cost of a step), so the state passed to ``act`` is consumed: it must not be acted on again.
    def _read_cache(self, memory: torch.Tensor, cache_kv: list[KVCache] | None = None) -> list[KVCache | None]:
        """Keys/values ``[cache ; read tokens]`` of a new segment (read tokens only see each other)."""
        M, C = self.config.memory_tokens, self.config.cache_len
        if M == 0:
            return [None] * len(self.blocks)
        mask = (torch.arange(C + M, device=memory.device) >= C).view(1, 1, 1, -1) if C else None
        return self._run(self.drop(memory + self.position(0, M)), mask, cache_kv if C else [None] * len(self.blocks))[1]

    def _fresh_cache(self, memory: torch.Tensor, cache_kv: list[KVCache] | None = None) -> list[KVCache]:
        """Slot buffers (B, heads, C + M + 3K + 1, d/heads) holding the hidden-state cache's keys/values
        ``cache_kv`` (None: zeros, all masked) and the read tokens of ``memory``."""
        M, C, heads = self.config.memory_tokens, self.config.cache_len, self.config.n_heads
        B, dh = memory.shape[0], self.config.d_model // heads
        rest = memory.new_zeros(B, heads, 3 * self.config.context_len + 1, dh)
        if cache_kv is None:
            cache_kv = [(memory.new_zeros(B, heads, C, dh),) * 2] * len(self.blocks)
        read = self._read_cache(memory, cache_kv)
        return [tuple(torch.cat([t, rest], dim=2) for t in (past if kv is None else kv))
                for kv, past in zip(read, cache_kv)]

    def _run_slots(self, x: torch.Tensor, slots: torch.Tensor, cache: list[KVCache], valid=None, inputs=None):
        """Blocks over new trajectory tokens (B, T, d) at buffer ``slots`` (B, T): each sees the segment
        slots up to its own and the ``valid`` (B, C) slots of the hidden-state cache."""
        C = self.config.cache_len
        keys = torch.arange(cache[0][0].shape[2], device=x.device)
        mask = (keys <= slots[..., None]) & (keys >= C)
        if C:
            mask = mask | ((keys < C) & torch.cat([valid, valid.new_zeros(valid.shape[0], len(keys) - C)], 1)[:, None])
        return self._run(x, mask[:, None], cache, slots, inputs)

    @contextlib.contextmanager
    def _capturing_rows(self, rows: torch.Tensor):
        """Passes over a subset of the batch tell an attention recorder (if any) which rows they hold."""
        layers = [block.attn for block in self.blocks if block.attn.capture is not None]
        saved = [attn.capture for attn in layers]
        for attn in layers:
            attn.capture = functools.partial(attn.capture, rows=rows)
        try:
            yield
        finally:
            for attn, capture in zip(layers, saved):
                attn.capture = capture

    def _empty_hidden(self, batch_size: int, like: torch.Tensor) -> dict:
        """The hidden-state cache fields of a state whose episodes all start now (none without a cache)."""
        C, K, d, n = self.config.cache_len, self.config.context_len, self.config.d_model, len(self.blocks)
        if not C:
            return {}
        hidden, valid = hidden_cache.empty(batch_size, n, C, d, like)
        return dict(cache_hidden=hidden, cache_valid=valid, segment_hidden=like.new_zeros(batch_size, n, 3 * K + 1, d))

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> RMDTState:
        memory = self.memory.detach().to(device if device is not None else self.memory.device)
        memory = memory.expand(batch_size, -1, -1)
        step = np.zeros(batch_size, np.int64)
        if self.config.dt_context == "sliding":
            window = memory.new_zeros(batch_size, 3 * self.config.context_len - 1, self.config.d_model)
            return RMDTState(memory=memory, cache=[], step=step, window=window)
        with torch.no_grad():
            return RMDTState(memory=memory, cache=self._fresh_cache(memory), step=step,
                             **self._empty_hidden(batch_size, memory))

    @torch.no_grad()
    def reset(self, state: RMDTState, done) -> RMDTState:
        """Rows where ``done`` (B,) start a new episode: learned initial memory, empty cache and segment, step 0."""
        rows = np.flatnonzero(done.cpu().numpy() if isinstance(done, torch.Tensor) else np.asarray(done))
        step = state.step.copy()
        step[rows] = 0
        if len(rows) == 0 or self.config.dt_context == "sliding":  # a sliding window is valid up to its step
            return dataclasses.replace(state, step=step)
        index = torch.as_tensor(rows, device=state.memory.device)
        memory = self.memory.detach().to(state.memory.device).expand(len(rows), -1, -1)
        with self._capturing_rows(index):
            fresh = self._fresh_cache(memory)
        hidden = {name: getattr(state, name).index_copy(0, index, value)
                  for name, value in self._empty_hidden(len(rows), memory).items()}
        return dataclasses.replace(state, memory=state.memory.index_copy(0, index, memory),
                                   cache=_put_rows(state.cache, index, fresh), step=step, **hidden)

    def _hooked(self, memory: torch.Tensor, hidden: torch.Tensor | None):
        """``memory`` (and the cached ``hidden`` states when the hook covers the cache) through ``memory_hook``,
        as one (b, M + layers * C, d) tensor so that an intervention moves a row's memory and cache together."""
        M, cached = self.config.memory_tokens, hidden is not None and self.hook_cache
        parts = ([memory] if M else []) + ([hidden.flatten(1, 2)] if cached else [])
        if self.memory_hook is None or not parts:
            return memory, hidden
        out = self.memory_hook(torch.cat(parts, dim=1))
        return (out[:, :M] if M else memory), (out[:, M:].reshape(hidden.shape) if cached else hidden)

    def _next_segment(self, state: RMDTState, last_action: torch.Tensor, rows: np.ndarray) -> RMDTState:
        """Rows that completed their segment: its last action joins the buffer, the write tokens run over
        it, the hidden-state cache takes the segment's last tokens, and the next memory (through
        ``memory_hook``) starts a fresh segment buffer."""
        K, M, C = self.config.context_len, self.config.memory_tokens, self.config.cache_len
        step = state.step.copy()
        step[rows] = 0
        if M == 0 and C == 0:  # a DT segment carries nothing over; the stale buffer is masked
            return dataclasses.replace(state, step=step)
        index = torch.as_tensor(rows, device=state.memory.device)
        end = C + M + 3 * K
        with self._capturing_rows(index):
            cache = [(k[index], v[index]) for k, v in state.cache]
            a = self.embed_action(last_action[index])[:, None] + self.position(M + 3 * K - 1, M + 3 * K)
            inputs = [] if C else None
            cache = self._run_slots(self.drop(a), index.new_full((len(rows), 1), end - 1), cache,
                                    state.cache_valid[index] if C else None, inputs)[1]
            memory, hidden, changed = state.memory[index], None, {}
            if M:
                write = self.drop(memory + self.position(M + 3 * K, 2 * M + 3 * K))
                mask = (torch.arange(end + M, device=write.device) >= C).view(1, 1, 1, -1) if C else None
                memory = self._update_memory(memory, self._run(write, mask, [(k[:, :, :end], v[:, :, :end])
                                                                              for k, v in cache])[0])
            if C:
                segment = state.segment_hidden[index, :, :3 * K].clone()
                segment[:, :, -1] = torch.stack(inputs, dim=1)[:, :, 0]
                hidden, valid = hidden_cache.roll(state.cache_hidden[index], state.cache_valid[index], segment,
                                                  segment.new_ones(len(rows), 3 * K, dtype=torch.bool))
            memory, hidden = self._hooked(memory, hidden)
            if C:
                changed = dict(cache_hidden=state.cache_hidden.index_copy(0, index, hidden),
                               cache_valid=state.cache_valid.index_copy(0, index, valid))
            kv = hidden_cache.cache_keys_values(self.blocks, hidden, self.cache_position) if C else None
            fresh = self._fresh_cache(memory, kv)
        return dataclasses.replace(state, memory=state.memory.index_copy(0, index, memory),
                                   cache=_put_rows(state.cache, index, fresh), step=step, **changed)

    @torch.no_grad()
    def act(self, state: RMDTState, obs: torch.Tensor, last_action: torch.Tensor, last_reward: torch.Tensor,
            return_to_go: torch.Tensor) -> tuple[torch.Tensor, RMDTState]:
        """Next action output; writes ``last_action`` (when in this segment), R and o into each row's buffer.

        Rows whose segment is complete first write their memory and cache and start the next segment
        (``_next_segment``). Every row then runs the same three tokens (a, R, o) at its own slots,
        one batched pass of O(K + C) per step. The reward is not a token of RMDT and is ignored.
        """
        if self.config.dt_context == "sliding":
            return self._act_sliding(state, obs, last_action, return_to_go)
        K, M, C = self.config.context_len, self.config.memory_tokens, self.config.cache_len
        ends = np.flatnonzero(state.step == K)
        if len(ends):
            state = self._next_segment(state, last_action, ends)
        end = C + M + 3 * K
        step = torch.as_tensor(state.step, device=obs.device)
        slots = (C + M + 3 * step - 1)[:, None] + torch.arange(3, device=obs.device)
        slots[:, 0] = torch.where(step > 0, slots[:, 0], end)  # no previous action: the scratch slot
        x = torch.stack([self.embed_action(last_action), self.embed_return(return_to_go),
                         self.embed_obs(self.obs_norm(obs))], dim=1)
        x = x + self.position(0, M + 3 * K)[(slots - C).clamp(max=M + 3 * K - 1)]
        inputs = [] if C else None
        out, cache = self._run_slots(self.drop(x), slots, state.cache, state.cache_valid, inputs)
        changed = {}
        if C:  # block inputs of the new tokens, by segment slot (the scratch slot is 3K)
            index = (slots - C - M)[:, None, :, None].expand(-1, len(self.blocks), -1, self.config.d_model)
            changed["segment_hidden"] = state.segment_hidden.scatter_(2, index, torch.stack(inputs, dim=1))
        return self._head(out[:, -1]), dataclasses.replace(state, cache=cache, step=state.step + 1, **changed)

    def _act_sliding(self, state: RMDTState, obs, last_action, return_to_go) -> tuple[torch.Tensor, RMDTState]:
        """DT step over the last K steps, re-run as one segment (positions from 0): O(K^2) per step.

        Training's segment position p saw p earlier steps; here every step from the K-th on sees
        K-1, as a window starting anywhere in an episode did in training. The window is a fixed
        buffer, right-aligned: row b's last min(3 step - 1, 3K - 1) tokens are its own (the rest is
        masked), so rows at different steps share one pass.
        """
        width = 3 * self.config.context_len - 1
        new = torch.stack([self.embed_action(last_action), self.embed_return(return_to_go),
                           self.embed_obs(self.obs_norm(obs))], dim=1)
        window = torch.cat([state.window, new], dim=1)[:, -width:]  # (R, o, a) x (K-1) then R, o
        step = state.step + 1
        index = torch.arange(width, device=obs.device)
        first = width - torch.as_tensor(np.minimum(3 * step - 1, width), device=obs.device)  # (B,) first own token
        x = self.drop(window + self.position(0, width)[(index - first[:, None]).clamp(min=0)])
        causal = index[:, None] >= index[None, :]
        mask = (causal & (index >= first[:, None, None])) | (index[:, None] == index[None, :])
        out = self._run(x, mask[:, None], [None] * len(self.blocks))[0]
        return self._head(out[:, -1]), RMDTState(memory=state.memory, cache=state.cache, step=step, window=window)

    def set_memory_hook(self, hook, cache: bool = False) -> None:
        """``act`` passes each memory it writes at a segment boundary through ``hook`` before reading it.

        The hook receives the memories (b, M, d) of the rows that cross a boundary at that step
        (all rows while they run in lockstep). ``cache``: with a hidden-state cache, the hook gets
        (b, M + layers * C, d), the memory followed by the cached hidden states, so that it zeroes
        or shuffles both (which cache slots hold a token stays each row's own).

        A DT (M = 0) without a cache hook writes nothing, so the hook is never called and its
        rollouts are unchanged.
        """
        self.memory_hook, self.hook_cache = hook, cache
