"""The sliding-window DT rollout (``dt_context`` "sliding", memory_tokens 0): the DT paper's play.

Every step re-runs the last K steps as one segment (positions from 0): O(K^2) per step. Training's
segment position p saw p earlier steps; here every step from the K-th on sees K-1, as a window
starting anywhere in an episode did in training. The window is a fixed buffer, right-aligned: row
b's last min(3 step - 1, 3K - 1) tokens are its own (the rest is masked), so rows at different
steps share one pass. Training is the same as for any DT (rmdt.models.rmdt.model); only rollouts
differ, and a restart only resets a row's step (its window is valid up to its step).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch


def empty_window(model, batch_size: int, like: torch.Tensor) -> torch.Tensor:
    """(B, 3K-1, d) zeros: the token window of episodes that start now."""
    return like.new_zeros(batch_size, 3 * model.config.context_len - 1, model.config.d_model)


def act(model, state, obs: torch.Tensor, last_action: torch.Tensor, return_to_go: torch.Tensor):
    """One DT step of ``model`` (an RMDTModel) over the last K steps: ``(output, next state)``."""
    width = 3 * model.config.context_len - 1
    new = torch.stack([model.embed_action(last_action), model.embed_return(return_to_go),
                       model.embed_obs(model.obs_norm(obs))], dim=1)
    if model.timestep is not None:
        new = new + model._act_time(state.step)
    window = torch.cat([state.window, new], dim=1)[:, -width:]  # (R, o, a) x (K-1) then R, o
    step = state.step + 1
    index = torch.arange(width, device=obs.device)
    first = width - torch.as_tensor(np.minimum(3 * step - 1, width), device=obs.device)  # (B,) first own token
    x = model.drop(window + model.position(0, width)[(index - first[:, None]).clamp(min=0)])
    causal = index[:, None] >= index[None, :]
    mask = (causal & (index >= first[:, None, None])) | (index[:, None] == index[None, :])
    out = model._run(x, mask[:, None], [None] * len(model.blocks))[0]
    return model._head(out[:, -1]), dataclasses.replace(state, step=step, window=window)
