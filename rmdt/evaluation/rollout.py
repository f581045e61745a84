"""Return-conditioned rollouts of any policy in a batch of environments, one step at a time.

Works with every model behind ``rmdt.models.Policy`` and every vector env that does not
auto-reset (finished environments stay done and pay nothing): the policy keeps stepping finished
environments in lockstep, and their rewards and steps are not counted. A policy, or a wrapper such
as the attention recorder, that defines ``observe_done(done)`` is told after every step which
episodes have ended ((n,) bool array).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from rmdt.progress import progress_bar


@dataclass
class RolloutResult:
    returns: np.ndarray  # (n,) undiscounted return of each episode
    lengths: np.ndarray  # (n,) steps of each episode
    steps: int  # lockstep environment steps taken (the longest episode)


@torch.no_grad()
def rollout(policy, env, target_return: float, seed: int, max_steps: int, device="cpu",
            progress: str | None = None) -> RolloutResult:
    """Runs ``env.num_envs`` episodes at once, conditioning on ``target_return`` minus rewards so far."""
    if target_return is None:
        raise ValueError("evaluation.target_return is null and this environment has no default target: "
                         "set evaluation.target_return (or pass --target-return)")
    scale = float(getattr(policy.config, "return_scale", 1.0))
    n = env.num_envs
    obs, _ = env.reset(seed=seed)
    state = policy.initial_state(n, device)
    action_shape = () if policy.discrete else (policy.config.act_dim,)
    last_action = torch.zeros((n, *action_shape), dtype=torch.long if policy.discrete else torch.float32,
                              device=device)
    last_reward = torch.zeros(n, device=device)
    to_go = np.full(n, target_return, np.float64)
    returns, lengths = np.zeros(n), np.zeros(n, np.int64)
    done = np.zeros(n, bool)
    observe_done = getattr(policy, "observe_done", None)
    steps = 0
    with progress_bar(total=max_steps, desc=progress, disable=progress is None, leave=False, unit="step") as bar:
        while not done.all() and steps < max_steps:
            obs_t = torch.as_tensor(obs, device=device)
            rtg = torch.as_tensor(to_go / scale, dtype=torch.float32, device=device)
            output, state = policy.act(state, obs_t, last_action, last_reward, rtg)
            last_action = policy.greedy_action(output)
            obs, reward, terminated, truncated, _ = env.step(last_action.cpu().numpy())
            reward = np.where(done, 0.0, reward)
            returns += reward
            lengths += ~done
            to_go -= reward
            done |= np.asarray(terminated) | np.asarray(truncated)
            if observe_done is not None:
                observe_done(done)
            last_reward = torch.as_tensor(reward, dtype=torch.float32, device=device)
            steps += 1
            bar.update()
    return RolloutResult(returns=returns, lengths=lengths, steps=steps)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate (sound at 0 and 1, unlike the normal one)."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(values: np.ndarray, resamples: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of a mean return: no normality assumed (returns are skewed and
    bounded, where a t-interval can leave the possible range); (x, x) for one value."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(len(values), size=(resamples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)
