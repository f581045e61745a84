"""The one interface every model is trained and evaluated through.

The trainer only calls ``loss``; the evaluator only calls ``initial_state``, ``act``, ``reset``
and ``greedy_action``. Neither branches on the model kind, so RMDT, DT, FFM and memoroid models are
interchangeable behind this class.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F


class Policy:
    """Mixin declaring the policy contract; subclasses are ``nn.Module``s and set ``discrete``.

    State is opaque to the caller: whatever ``initial_state`` returns is passed back to ``act``,
    which returns the next one (and may consume the one it was given: act on a state once, or
    deep-copy it first). ``act`` is one environment step, vectorised over a batch of
    environments; it is inference only (no gradients, eval mode expected).
    """

    discrete: bool  # True: act returns logits over actions; False: it returns actions in [-1, 1]
    batchings: tuple[str, ...] = ("segments",)  # data.batching values ``loss`` trains on ("tape": whole episodes)
    checkpointable_segments: bool = False  # True: ``checkpoint_segments = True`` recomputes segments in backward

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Scalar training loss over the real (unmasked) steps and detached metric tensors.

        Metrics stay tensors so that logging them never forces a device sync inside the step.
        """
        raise NotImplementedError

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> Any:
        """State before the first step of a batch of episodes that start together."""
        raise NotImplementedError

    def act(self, state: Any, obs: torch.Tensor, last_action: torch.Tensor, last_reward: torch.Tensor,
            return_to_go: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """One step for every environment: ``(output, next_state)``.

        obs: (B, *obs_shape); last_action: (B,) int64 or (B, act_dim), the action taken at the
        previous step (ignored at the first step); last_reward: (B,) the reward it earned;
        return_to_go: (B,) already divided by the return scale. ``output`` is action logits
        (discrete) or the action itself (continuous); see ``greedy_action``.
        """
        raise NotImplementedError

    def reset(self, state: Any, done) -> Any:
        """Restart the environments where ``done`` (B,) bool (tensor or numpy) is True: their next
        ``act`` is an episode's first step, from a fresh state; the other rows' state is unchanged.

        Rollouts call it for every environment whose episode ended, so one batch serves many
        episodes that start and end at different steps (rmdt.evaluation.rollout).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot restart single environments (Policy.reset)")

    def set_memory_hook(self, hook: Callable[[torch.Tensor], torch.Tensor] | None, cache: bool = False) -> None:
        """Makes ``act`` pass the memory it carries into each new segment through ``hook`` (None: stop).

        Optional, for the memory probe (rmdt.evaluation.probe), which zeroes or shuffles memory this
        way; ``hook`` maps a (B, ...) memory to one of the same shape. ``cache``: the hook covers a
        cache of earlier hidden states too (RMDT's ``cache_len``).
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no segment memory the memory probe can intervene on")

    def greedy_action(self, output: torch.Tensor) -> torch.Tensor:
        """The deterministic action for an ``act`` output: argmax of logits, or the action itself."""
        return output.argmax(-1) if self.discrete else output


def action_loss(preds, actions, mask, discrete: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mean cross entropy or MSE over the steps where ``mask`` is True, with detached metrics."""
    count = mask.sum().clamp_min(1).float()
    if discrete:
        targets = torch.where(mask, actions, 0)
        per_step = F.cross_entropy(preds.flatten(0, 1), targets.flatten(), reduction="none").view_as(mask)
        loss = torch.where(mask, per_step, 0.0).sum() / count
        accuracy = ((preds.argmax(-1) == targets) & mask).sum() / count
        return loss, {"loss": loss.detach(), "action_accuracy": accuracy.detach()}
    per_step = (preds - actions.float()).pow(2).mean(-1)
    loss = torch.where(mask, per_step, 0.0).sum() / count
    return loss, {"loss": loss.detach(), "action_mse": loss.detach()}
