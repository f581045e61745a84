"""GRU and LSTM as drop-in memory layers of the recurrent policy (the FFM paper's baselines).

Same call as a memoroid layer: ``layer(x, starts, state) -> (y, state)`` over (B, T, d), where
``starts`` (B, T) restarts the memory from zeros. Resets are exact either way ``scan`` asks:
``"sequential"`` calls the kernel once per step and zeroes the state of rows that start there;
``"parallel"`` cuts the tape into the runs between starts and packs them into one call of the fused
``nn.GRU`` / ``nn.LSTM`` kernel (cuDNN's), each run from zeros (or, for a row's first run when it
is not a start, from the carried state). No gradient crosses a reset: nothing flows into a zero
state. On CPUs the per-step loop measured faster than packing (``bench/perf/rnn_resets.py``,
docs/performance.md), so ``"auto"`` packs on CUDA only. A batch with no start past its first column (every ``act`` step,
every padded segment) is one plain call in every mode, the fastest of all.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rmdt.models.memoroid import SCANS


class RNNLayer(nn.Module):
    """One-layer GRU or LSTM of width ``size`` whose memory restarts at start flags."""

    def __init__(self, size: int, cell: str, scan: str = "auto") -> None:
        super().__init__()
        if cell not in RNN_LAYERS:
            raise ValueError(f"cell must be one of {list(RNN_LAYERS)}, got {cell!r}")
        if scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
        self.lstm, self.scan = cell == "lstm", scan
        self.rnn = (nn.LSTM if self.lstm else nn.GRU)(size, size, batch_first=True)

    def initial_state(self, batch_size: int, device=None) -> tuple[torch.Tensor, ...]:
        """Batch-first (B, 1, size) like every policy state, so per-row tools (reset, state norms) see rows."""
        zeros = torch.zeros(batch_size, 1, self.rnn.hidden_size, device=device)
        return (zeros, zeros.clone()) if self.lstm else (zeros,)

    def _call(self, x, state):
        """torch's RNNs hold their state as (1, B, size): transposed in and out. Under CPU autocast the
        kernel runs in float32: oneDNN has no bf16 LSTM on CPUs without bf16 instructions (it raises)."""
        state = tuple(s.transpose(0, 1).contiguous() for s in state)
        cpu_mixed = x.data.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        if cpu_mixed:
            x, state = x.float(), tuple(s.float() for s in state)
        with torch.autocast("cpu", enabled=False) if cpu_mixed else nullcontext():
            y, out = self.rnn(x, state if self.lstm else state[0])
        return y, tuple(s.transpose(0, 1) for s in (out if self.lstm else (out,)))

    def forward(self, x: torch.Tensor, starts: torch.Tensor, state: tuple[torch.Tensor, ...]):
        keep = (~starts[:, 0]).to(x.dtype)[:, None, None]
        state = tuple(s * keep for s in state)  # rows starting at column 0 begin from zeros
        if x.shape[1] == 1 or not bool(starts[:, 1:].any()):
            return self._call(x, state)
        if self.scan == "parallel" or self.scan == "auto" and x.is_cuda:
            return self._packed(x, starts, state)
        return self._steps(x, starts, state)

    def _steps(self, x, starts, state):
        """One kernel call per step; the state of rows that start at a step is zeroed before it."""
        keep = (~starts).to(x.dtype).T[:, :, None, None]  # (T, B, 1, 1)
        outputs = []
        for t in range(x.shape[1]):
            y, state = self._call(x[:, t:t + 1], state if t == 0 else tuple(s * keep[t] for s in state))
            outputs.append(y)
        return torch.cat(outputs, 1), state

    def _packed(self, x, starts, state):
        """Each run between starts is one sequence of a packed batch; outputs go back in place."""
        batch, steps = starts.shape
        cut = starts.clone()
        cut[:, 0] = True  # a row's first run begins at column 0, from the (already masked) carried state
        flat_cut = cut.reshape(-1)
        begins = flat_cut.nonzero().squeeze(1)  # flat position where each run begins, row-major
        lengths = torch.diff(begins, append=begins.new_tensor([batch * steps]))
        run = flat_cut.long().cumsum(0) - 1  # the run of every step
        offset = torch.arange(batch * steps, device=x.device) - begins[run]
        padded = x.new_zeros(len(begins), int(lengths.max()), x.shape[-1])
        padded[run, offset] = x.reshape(batch * steps, -1)
        row = begins // steps
        carried = (begins % steps == 0).to(x.dtype)[:, None, None]
        initial = tuple(s[row] * carried for s in state)
        packed = pack_padded_sequence(padded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, final = self._call(packed, initial)
        out, _ = pad_packed_sequence(out, batch_first=True)
        y = out[run, offset].reshape(batch, steps, -1)
        last = run.reshape(batch, steps)[:, -1]  # each row's last run carries on
        return y, tuple(s[last] for s in final)


RNN_LAYERS = ("gru", "lstm")
