"""RMDT rollouts: one step at a time, O(K + C) per step, every row at its own position of its own segment.

``RMDTRollouts`` is the part of ``RMDTModel`` behind the Policy interface (``initial_state``, ``act``,
``reset``, ``set_memory_hook``); it runs the model's own layers (rmdt.models.rmdt.model). A DT with
``dt_context`` "sliding" steps through rmdt.models.rmdt.sliding instead.

A row's cache is a fixed buffer indexed by slot: the hidden-state cache's keys/values at 0..C-1, read
tokens at C..C+M-1, step s's a_{s-1}, R_s, o_s at C+M+3s-1 .. C+M+3s+1, and one scratch slot at
C+M+3K for the "previous action" of a segment's first step (it has none). Each segment token sees
the segment slots up to its own (and trajectory tokens the valid cache slots), so stale entries of an
earlier segment beyond a row's position are never read. A step writes its keys/values (and block
inputs) into the buffers in place (copying them would double the cost of a step), so the state
passed to ``act`` is consumed: it must not be acted on again.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from rmdt.models import hidden_cache
from rmdt.models.rmdt.sliding import act as sliding_act
from rmdt.models.rmdt.sliding import empty_window
from rmdt.models.transformer import KVCache, put_rows


@dataclass
class RMDTState:
    """Rollout state of ``act``, per row: each environment is at its own step of its own segment.

    ``step`` lives on the host: the rollout decides every restart, so the model knows which rows
    cross a segment boundary without waiting for the device.
    """

    memory: torch.Tensor  # (B, M, d_model) memory read by each row's current segment
    # per layer, keys/values (B, heads, C + M + 3K + 1, d/heads) by slot: hidden-state cache, then the
    # segment; the last slot is scratch
    cache: list[KVCache]
    step: np.ndarray  # (B,) int64: steps of the current segment already taken, 0..K ("sliding": of the episode)
    # dt_context "sliding": (B, 3K-1, d) token embeddings of the last steps, right-aligned
    window: torch.Tensor | None = None
    # cache_len C > 0: (B, layers, C, d) detached hidden states of the last C tokens before the segment
    cache_hidden: torch.Tensor | None = None
    cache_valid: torch.Tensor | None = None  # (B, C) bool: cache slots that hold a token of this episode
    # (B, layers, 3K + 1, d) block inputs of the segment's tokens by slot (last: scratch)
    segment_hidden: torch.Tensor | None = None
    # max_timestep > 0 with dt_context "segments": (B,) int64 steps of the episode already taken (its timestep)
    time: np.ndarray | None = None


class RMDTRollouts:
    """Mixin of ``RMDTModel``: the per-row rollout engine over the model's layers."""

    def _read_cache(self, memory: torch.Tensor, cache_kv: list[KVCache] | None = None) -> list[KVCache | None]:
        """Keys/values ``[cache ; read tokens]`` of a new segment (read tokens only see each other)."""
        M, C = self.config.memory_tokens, self.config.cache_len
        if M == 0:
            return [None] * len(self.blocks)
        mask = (torch.arange(C + M, device=memory.device) >= C).view(1, 1, 1, -1) if C else None
        past = cache_kv if C else [None] * len(self.blocks)
        return self._run(self.drop(memory + self.position(0, M)), mask, past)[1]

    def _fresh_cache(self, memory: torch.Tensor, cache_kv: list[KVCache] | None = None) -> list[KVCache]:
        """Slot buffers (B, heads, C + M + 3K + 1, d/heads) holding the hidden-state cache's keys/values
        ``cache_kv`` (None: zeros, all masked) and the read tokens of ``memory``."""
        C, heads = self.config.cache_len, self.config.n_heads
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
            return RMDTState(memory=memory, cache=[], step=step, window=empty_window(self, batch_size, memory))
        with torch.no_grad():
            return RMDTState(memory=memory, cache=self._fresh_cache(memory), step=step,
                             time=step.copy() if self.timestep is not None else None,
                             **self._empty_hidden(batch_size, memory))

    @torch.no_grad()
    def reset(self, state: RMDTState, done) -> RMDTState:
        """Rows where ``done`` (B,) start a new episode: learned initial memory, empty cache and segment, step 0."""
        rows = np.flatnonzero(done.cpu().numpy() if isinstance(done, torch.Tensor) else np.asarray(done))
        step = state.step.copy()
        step[rows] = 0
        if state.time is not None:
            time = state.time.copy()
            time[rows] = 0
            state = dataclasses.replace(state, time=time)
        if len(rows) == 0 or self.config.dt_context == "sliding":  # a sliding window is valid up to its step
            return dataclasses.replace(state, step=step)
        index = torch.as_tensor(rows, device=state.memory.device)
        memory = self.memory.detach().to(state.memory.device).expand(len(rows), -1, -1)
        fresh = self._fresh_cache(memory)
        hidden = {name: getattr(state, name).index_copy(0, index, value)
                  for name, value in self._empty_hidden(len(rows), memory).items()}
        return dataclasses.replace(state, memory=state.memory.index_copy(0, index, memory),
                                   cache=put_rows(state.cache, index, fresh), step=step, **hidden)

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
        cache = [(k[index], v[index]) for k, v in state.cache]
        a = self.embed_action(last_action[index])[:, None] + self.position(M + 3 * K - 1, M + 3 * K)
        if state.time is not None:  # the segment's last action is the previous step's token
            a = a + self._episode_time(state.time[rows] - 1)[:, None]
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
                                   cache=put_rows(state.cache, index, fresh), step=step, **changed)

    @torch.no_grad()
    def act(self, state: RMDTState, obs: torch.Tensor, last_action: torch.Tensor, last_reward: torch.Tensor,
            return_to_go: torch.Tensor) -> tuple[torch.Tensor, RMDTState]:
        """Next action output; writes ``last_action`` (when in this segment), R and o into each row's buffer.

        Rows whose segment is complete first write their memory and cache and start the next segment
        (``_next_segment``). Every row then runs the same three tokens (a, R, o) at its own slots,
        one batched pass of O(K + C) per step. The reward is not a token of RMDT and is ignored.
        """
        if self.config.dt_context == "sliding":
            return sliding_act(self, state, obs, last_action, return_to_go)
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
        if state.time is not None:
            x = x + self._act_time(state.time)
        inputs = [] if C else None
        out, cache, _ = self._run_slots(self.drop(x), slots, state.cache, state.cache_valid, inputs)
        changed = {}
        if C:  # block inputs of the new tokens, by segment slot (the scratch slot is 3K)
            index = (slots - C - M)[:, None, :, None].expand(-1, len(self.blocks), -1, self.config.d_model)
            changed["segment_hidden"] = state.segment_hidden.scatter_(2, index, torch.stack(inputs, dim=1))
        if state.time is not None:
            changed["time"] = state.time + 1
        return self._head(out[:, -1]), dataclasses.replace(state, cache=cache, step=state.step + 1, **changed)

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
