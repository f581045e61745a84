"""ELMUR rollouts: one step at a time, O(K) per step, every row at its own position of its own segment.

``ELMURRollouts`` is the part of ``ELMURModel`` behind the Policy interface (``initial_state``, ``act``,
``reset``, ``set_memory_hook``). A row keeps, per layer, its memory bank and slot times, the keys/values
of its segment's tokens in a fixed buffer by slot (step s's a_{s-1}, R_s, o_s at 3s-1 .. 3s+1, and one
scratch slot at 3K for the "previous action" of a segment's first step, which has none) and the layer's
outputs of those tokens (what the bank's write reads when the segment is complete). A token sees the
slots up to its own, so stale entries of an earlier segment are never read. Buffers are written in
place: the state passed to ``act`` is consumed and must not be acted on again.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from rmdt.models.transformer import KVCache, put_rows


@dataclass
class ELMURState:
    """Rollout state of ``act``, per row. ``step`` and ``segment`` live on the host: the rollout decides
    every restart, so the model knows which rows cross a segment boundary without a device sync."""

    memory: torch.Tensor  # (B, n_layers, M, d) banks the current segment reads
    slot_time: torch.Tensor  # (B, n_layers, M) token time of each slot's last write; -1: never written
    cache: list[KVCache]  # per layer, self-attention keys/values (B, heads, 3K + 1, d/heads) by slot
    hidden: torch.Tensor  # (B, n_layers, 3K + 1, d) each layer's outputs of the segment's tokens by slot
    step: np.ndarray  # (B,) int64: steps of the current segment already taken, 0..K
    segment: np.ndarray  # (B,) int64: segments of the episode completed (token time = segment * 3K + slot)


class ELMURRollouts:
    """Mixin of ``ELMURModel``: the per-row rollout engine over the model's layers."""

    def _fresh(self, batch_size: int, like: torch.Tensor) -> dict:
        """Every per-row tensor of a state whose episodes start now."""
        K, heads, d = self.config.context_len, self.config.n_heads, self.config.d_model
        memory, slot_time = self.initial_memory(batch_size)
        buffer = like.new_zeros(batch_size, heads, 3 * K + 1, d // heads)
        return dict(memory=memory.detach().to(like.device).clone(), slot_time=slot_time.to(like.device),
                    cache=[(buffer.clone(), buffer.clone()) for _ in self.layers],
                    hidden=like.new_zeros(batch_size, len(self.layers), 3 * K + 1, d))

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> ELMURState:
        like = self.memory.detach().to(device if device is not None else self.memory.device)
        zeros = np.zeros(batch_size, np.int64)
        return ELMURState(**self._fresh(batch_size, like), step=zeros, segment=zeros.copy())

    @torch.no_grad()
    def reset(self, state: ELMURState, done) -> ELMURState:
        """Rows where ``done`` (B,) start a new episode: the learned initial banks, all slots unwritten, step 0."""
        rows = np.flatnonzero(done.cpu().numpy() if isinstance(done, torch.Tensor) else np.asarray(done))
        if len(rows) == 0:
            return state
        step, segment = state.step.copy(), state.segment.copy()
        step[rows], segment[rows] = 0, 0
        index = torch.as_tensor(rows, device=state.memory.device)
        fresh = self._fresh(len(rows), state.hidden)
        cache = put_rows(state.cache, index, fresh.pop("cache"))
        changed = {name: getattr(state, name).index_copy(0, index, value) for name, value in fresh.items()}
        return dataclasses.replace(state, cache=cache, step=step, segment=segment, **changed)

    def _tokens(self, x: torch.Tensor, slots: torch.Tensor, time: torch.Tensor, memory, slot_time, cache, hidden):
        """New tokens (b, T, d) at buffer ``slots`` (b, T), token times ``time``, through every layer; writes
        their keys/values into ``cache`` and each layer's outputs into ``hidden`` (in place)."""
        keys = torch.arange(cache[0][0].shape[2], device=x.device)
        mask = (keys <= slots[..., None])[:, None]
        index = slots[..., None].expand(-1, -1, x.shape[-1])
        for i, layer in enumerate(self.layers):
            x = layer.tokens(x, memory[:, i], time, slot_time[:, i], mask, cache[i], slots=slots)[0]
            hidden[:, i].scatter_(1, index, x)
        return x

    def _next_segment(self, state: ELMURState, last_action: torch.Tensor, rows: np.ndarray) -> ELMURState:
        """Rows that completed their segment: its last action runs through the layers, every layer's bank
        is written from the layer's outputs of the segment (through ``memory_hook``), and a new segment starts."""
        K = self.config.context_len
        T = 3 * K
        index = torch.as_tensor(rows, device=state.memory.device)
        memory, slot_time, hidden = state.memory[index], state.slot_time[index], state.hidden[index]
        cache = [(k[index], v[index]) for k, v in state.cache]
        slot = index.new_full((len(rows), 1), T - 1)
        time = torch.as_tensor(state.segment[rows] * T, device=slot.device)[:, None] + slot
        a = self.drop(self.embed_action(last_action[index])[:, None] + self.position(T - 1, T))
        self._tokens(a, slot, time, memory, slot_time, cache, hidden)
        token_time = time - T + 1 + torch.arange(T, device=slot.device)
        memory, slot_time, _ = self._write_banks(memory, slot_time, hidden[:, :, :T].unbind(1), token_time)
        if self.memory_hook is not None:
            memory = self.memory_hook(memory.flatten(1, 2)).view_as(memory)
        step, segment = state.step.copy(), state.segment.copy()
        step[rows], segment[rows] = 0, segment[rows] + 1
        return dataclasses.replace(state, memory=state.memory.index_copy(0, index, memory),
                                   slot_time=state.slot_time.index_copy(0, index, slot_time),
                                   step=step, segment=segment)

    @torch.no_grad()
    def act(self, state: ELMURState, obs: torch.Tensor, last_action: torch.Tensor, last_reward: torch.Tensor,
            return_to_go: torch.Tensor) -> tuple[torch.Tensor, ELMURState]:
        """Next action output; writes ``last_action`` (when in this segment), R and o into each row's buffers.

        Rows whose segment is complete first write their banks and start the next segment. Every row then
        runs the same three tokens (a, R, o) at its own slots, one batched pass of O(K) per step. The
        reward is not a token of ELMUR and is ignored.
        """
        K = self.config.context_len
        T = 3 * K
        ends = np.flatnonzero(state.step == K)
        if len(ends):
            state = self._next_segment(state, last_action, ends)
        step = torch.as_tensor(state.step, device=obs.device)
        slots = (3 * step - 1)[:, None] + torch.arange(3, device=obs.device)
        slots[:, 0] = torch.where(step > 0, slots[:, 0], T)  # no previous action: the scratch slot
        x = torch.stack([self.embed_action(last_action), self.embed_return(return_to_go),
                         self.embed_obs(self.obs_norm(obs))], dim=1)
        x = self.drop(x + self.position(0, T)[slots.clamp(max=T - 1)])
        time = torch.as_tensor(state.segment * T, device=obs.device)[:, None] + slots
        out = self._tokens(x, slots, time, state.memory, state.slot_time, state.cache, state.hidden)
        return self._head(out[:, -1]), dataclasses.replace(state, step=state.step + 1)

    def set_memory_hook(self, hook, cache: bool = False) -> None:
        """``act`` passes the banks it writes at a segment boundary through ``hook`` before they are read:
        (b, n_layers * M, d), every layer's slots of the rows crossing a boundary at that step. ELMUR has
        no hidden-state cache, so ``cache`` changes nothing."""
        self.memory_hook = hook
