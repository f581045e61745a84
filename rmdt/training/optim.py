"""AdamW with decay by parameter shape and module type, and the warm-up + cosine learning-rate schedule.

Decay applies to the weight matrices and kernels that multiply inputs (Linear, convolutions, the
observation encoders' layers included); it never applies to the explicit no-decay list below nor
to any parameter with fewer than two dimensions (biases, norm gains, per-channel decay rates of the
memoroids). The rule looks at what a parameter is, not at its name, so a new encoder gets decay
without being listed.

The schedule is a function of the step and of the run's *schedule history*: ``[[0, steps]]`` for a
fresh run, and one more ``[resume_step, new_steps]`` each time a resumed run changes
``training.steps``. Stretching keeps the learning rate continuous: from the resume step on it
decays by the cosine from its value there to ``lr * min_lr_ratio`` at the new last step (a
resume during warm-up just finishes the warm-up and decays to the new last step).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from rmdt.models.embeddings import PositionEmbedding

NO_DECAY_MODULES = (nn.Embedding, PositionEmbedding, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm,
                    nn.modules.batchnorm._NormBase)  # embedding tables, positions, norms
NO_DECAY_PARAMETERS = ("memory",)  # RMDT's learned initial memory (a parameter of the model itself)


def decays(module: nn.Module, name: str, param: torch.Tensor) -> bool:
    """Whether ``param`` (called ``name`` in its owner ``module``) gets weight decay."""
    return param.ndim >= 2 and not isinstance(module, NO_DECAY_MODULES) and name not in NO_DECAY_PARAMETERS


def decay_groups(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the trainable parameters with and without weight decay."""
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                full = f"{module_name}.{name}" if module_name else name
                (decay if decays(module, name, param) else no_decay).append(full)
    return decay, no_decay


def lr_factor(t, history: list) -> callable:
    """The multiplier of ``t.lr`` at each step, for ``t`` a TrainingConfig (see the module docstring)."""

    def base(step: int, steps: int) -> float:
        if step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        progress = min(1.0, (step - t.warmup_steps) / max(1, steps - t.warmup_steps))
        return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    def factor(step: int, upto: int = len(history)) -> float:
        index = max(i for i in range(upto) if history[i][0] <= step or i == 0)
        start, steps = history[index]
        if index == 0 or start <= t.warmup_steps:
            return base(step, steps)
        at_start = factor(start, index)  # the previous schedule's value where this one takes over
        progress = min(1.0, (step - start) / max(1, steps - start))
        return t.min_lr_ratio + (at_start - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def make_optimizer(model: nn.Module, config, history: list | None = None):
    """AdamW over ``model`` (decay groups as above) and its LambdaLR schedule."""
    t = config.training
    decay, no_decay = decay_groups(model)
    named = dict(model.named_parameters())
    groups = [{"params": [named[n] for n in decay], "weight_decay": t.weight_decay},
              {"params": [named[n] for n in no_decay], "weight_decay": 0.0}]
    # fused: one kernel for every parameter instead of a dozen operators each (the same update)
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in named.values())
    optimizer = torch.optim.AdamW(groups, lr=t.lr, betas=tuple(t.betas), fused=fused)
    factor = lr_factor(t, history or [[0, t.steps]])
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step))
