"""Stops a run whose loss or gradient norm stops being finite, before anything non-finite is saved.

Each step records, on the device, the first step whose loss or gradient norm was not finite; the
host reads that record only where it syncs anyway (log lines, evaluations, checkpoints, the end),
so the check costs no host sync per step. The run then stops naming the first bad step and the
metric, and since every save comes after a check, no checkpoint and no ``final/`` ever holds the
weights that step produced. With ``training.max_bad_steps = n > 0`` up to n bad steps are skipped
instead (no weight or optimizer update; this needs one host sync per step to decide), and the
(n+1)-th stops the run.
"""
from __future__ import annotations

import torch

METRICS = ("loss", "grad_norm")
NEVER = torch.iinfo(torch.int64).max


class NonFiniteError(RuntimeError):
    """Training produced a non-finite loss or gradient norm; the message names the step and the metric."""


class FiniteGuard:
    def __init__(self, accelerator, max_bad_steps: int, start_step: int = 0, check_grad_norm: bool = True) -> None:
        self.accelerator, self.max_bad_steps = accelerator, max_bad_steps
        self.step = torch.tensor(start_step, dtype=torch.int64, device=accelerator.device)  # counted on the device
        # fp16's gradient scaler expects overflowing gradients and skips those steps itself
        self.metrics = METRICS if check_grad_norm else METRICS[:1]
        self.first_bad = torch.full((len(self.metrics),), NEVER, dtype=torch.int64, device=accelerator.device)
        self.skipped: list[int] = []

    def _bad(self, values: tuple) -> torch.Tensor:
        return torch.stack([~torch.isfinite(v.detach().float()).all() for v in values[:len(self.metrics)]])

    def observe(self, step: int, loss: torch.Tensor, grad_norm: torch.Tensor) -> bool:
        """Records step ``step`` (1-based); returns True when this step must be skipped (not applied)."""
        bad = self._bad((loss, grad_norm))
        if not self.max_bad_steps:
            self.step += 1  # no host-to-device copy of ``step``: that would wait for the queued work
            self.first_bad = torch.where(bad, torch.minimum(self.first_bad, self.step), self.first_bad)
            return False
        bad = self.accelerator.reduce(bad.float(), reduction="sum") > 0  # every process decides alike
        if not bool(bad.any()):
            return False
        self.skipped.append(step)
        if len(self.skipped) > self.max_bad_steps:
            names = ", ".join(m for m, b in zip(self.metrics, bad.tolist()) if b)
            raise NonFiniteError(f"step {step}: {names} not finite (after skipping {self.max_bad_steps} bad steps: "
                                 f"{', '.join(map(str, self.skipped[:-1]))}; training.max_bad_steps)")
        return True

    def check(self) -> None:
        """Raises NonFiniteError if any process saw a non-finite value since the run started."""
        if self.max_bad_steps:
            return  # decided step by step
        first = self.accelerator.gather(self.first_bad[None]).min(dim=0).values.tolist()
        step = min(first)
        if step != NEVER:
            names = ", ".join(m for m, s in zip(self.metrics, first) if s == step)
            raise NonFiniteError(f"step {step}: {names} not finite; the run stopped and saved nothing after it "
                                 "(lower training.lr, set training.grad_clip, or check data.return_scale)")


def assert_finite_parameters(model: torch.nn.Module, what: str) -> None:
    """A last guard before ``what`` is written: no parameter may hold NaN or infinity."""
    named = list(model.named_parameters())
    finite = torch.stack([torch.isfinite(p.detach()).all() for _, p in named]).tolist()  # one host sync
    for (name, _), ok in zip(named, finite):
        if not ok:
            raise NonFiniteError(f"parameter {name} is not finite; {what} was not written")
