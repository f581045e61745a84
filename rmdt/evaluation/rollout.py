"""Return-conditioned rollouts of any policy: an episode queue over a batch of environments.

``episodes`` episodes run over ``env.num_envs`` environments: each environment starts one, and as
soon as an episode ends its environment is reset for the next (``Policy.reset`` restarts that row
of the policy state), until all are counted. Episode k's environment seed and its action-sampling
stream derive from (seed, k) alone, so its actions are the same whether it runs alone, in lockstep
with others or restarted next to rows at other steps.

Environments: gymnasium vector envs in any autoreset mode (``SyncVectorEnv``, ``AsyncVectorEnv``):
an ended row is reset explicitly, ``reset(seed=[...], options={"reset_mask": rows})`` with its next
episode's seed, which also cancels a pending NEXT_STEP autoreset (in SAME_STEP mode the env's own
unseeded reset is replaced). rmdt's own vector envs (T-Maze, Atari, Memory Maze) do not auto-reset
and keep a finished row frozen at no cost (``frozen_when_done``), so a row with no episode left is
simply stepped on; in gymnasium envs such rows run uncounted episodes until the last one ends.

Inside ``recording(...)`` every rollout also keeps the first episodes of its first environments, as
``act`` saw them and as they were played (``Episode``): analyses such as the attention export replay
them through the model afterwards (rmdt.evaluation.attention_export), so the rollout itself runs the
policy exactly as an evaluation does. A context rather than an argument, because the environments'
evaluators sit between the caller and ``rollout``.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass

import numpy as np
import torch

from rmdt.progress import progress_bar


@dataclass
class RolloutResult:
    returns: np.ndarray  # (episodes,) undiscounted return of each episode, in episode order
    lengths: np.ndarray  # (episodes,) steps of each episode
    env_steps: int  # real environment steps of the counted episodes (the sum of lengths)


@dataclass
class Episode:
    """One recorded episode, step by step: what ``act`` saw and what was played."""

    observations: np.ndarray  # (T', *obs_shape) the observation of each step
    actions: np.ndarray  # (T', *action_shape) the action taken at each step (fed to act as the next last_action)
    rewards: np.ndarray  # (T',) float32: the reward each step earned (the next last_reward)
    returns_to_go: np.ndarray  # (T',) float32: the return-to-go of each step, divided by the return scale
    length: int  # T: steps the episode took; T' = min(T, the recording's max_steps) of them are kept


class _Tape:
    """The first episode of each of the first ``rows`` environments of one rollout, up to ``max_steps`` steps."""

    def __init__(self, rows: int, max_steps: int | None):
        self.rows, self.max_steps = rows, max_steps
        self.steps = 0
        self.lengths = np.full(rows, -1)  # -1 while the row's first episode runs
        self.columns: list[tuple] = []  # per step: (obs, action, reward, return_to_go) of the rows

    def observe(self, obs) -> np.ndarray | None:
        """A copy of the recorded rows' observations (taken before the env steps: it may reuse its buffer)."""
        keep = (self.lengths < 0).any() and (self.max_steps is None or self.steps < self.max_steps)
        return np.array(obs[:self.rows]) if keep else None

    def record(self, seen, action: np.ndarray, reward: np.ndarray, return_to_go: np.ndarray, ended: np.ndarray) -> None:
        """One step: ``seen`` from ``observe`` (None: past what is kept), then what was played and earned."""
        if (self.lengths >= 0).all():
            return
        rows = slice(0, self.rows)
        if seen is not None:
            self.columns.append((seen, np.array(action[rows]), reward[rows].astype(np.float32),
                                 return_to_go[rows].astype(np.float32)))
        self.steps += 1
        self.lengths[(self.lengths < 0) & ended[rows]] = self.steps

    def episodes(self) -> list[Episode]:
        lengths = np.where(self.lengths < 0, self.steps, self.lengths)
        stacked = [np.stack(column, axis=1) for column in zip(*self.columns)] if self.columns else None
        out = []
        for b, length in enumerate(lengths.tolist()):
            kept = min(length, len(self.columns))
            obs, action, reward, to_go = (column[b, :kept] for column in stacked) if stacked else [np.zeros(0)] * 4
            out.append(Episode(observations=obs, actions=action, rewards=reward, returns_to_go=to_go, length=length))
        return out


_RECORDING: contextvars.ContextVar = contextvars.ContextVar("rmdt_rollout_recording", default=None)


@contextlib.contextmanager
def recording(episodes: int, max_steps: int | None = None):
    """Inside the block, every ``rollout`` records the first episode of each of its first ``episodes``
    environments (up to ``max_steps`` steps of each; None: all); yields the list to which each rollout
    appends its ``list[Episode]``, in environment order."""
    rollouts: list[list[Episode]] = []
    token = _RECORDING.set((episodes, max_steps, rollouts))
    try:
        yield rollouts
    finally:
        _RECORDING.reset(token)


def episode_seed(seed: int, episode: int) -> int:
    """Environment seed of episode ``episode`` of an evaluation seeded ``seed``: ``seed + episode``,
    gymnasium's convention for a batch seeded with one int, so a batch of episodes that all start at
    once sees the environments it saw before the queue existed."""
    return int(seed) + int(episode)


def _sampling_rng(seed: int, episode: int) -> np.random.Generator:
    """Episode ``episode``'s own stream of action samples."""
    return np.random.default_rng(np.random.SeedSequence([seed, episode]))


def _autoreset_mode(env) -> str:
    """``env``'s gymnasium autoreset mode by name ("NEXT_STEP", "SAME_STEP" or "DISABLED")."""
    from gymnasium.vector import AsyncVectorEnv, AutoresetMode

    mode = AutoresetMode(getattr(env, "metadata", {}).get("autoreset_mode", AutoresetMode.NEXT_STEP))
    base = getattr(env, "unwrapped", env)
    async_copying = isinstance(base, AsyncVectorEnv) and not getattr(base, "shared_memory", True)
    if async_copying and mode == AutoresetMode.NEXT_STEP:
        # gymnasium 1.4's worker clears a pending NEXT_STEP autoreset on reset only with shared memory.
        raise ValueError("an AsyncVectorEnv in NEXT_STEP autoreset mode needs shared_memory=True to reset "
                         "single environments; use shared_memory=True or autoreset_mode SAME_STEP/DISABLED")
    return mode.name


def _choose(policy, output: torch.Tensor, rngs: list) -> torch.Tensor:
    """Greedy actions, or, where ``rngs`` holds a row's generator, one sample from its logits.

    Sampling inverts each row's categorical CDF at a uniform draw from that row's own stream.
    Continuous policies here output one deterministic action (no distribution to sample), so they
    act greedily either way.
    """
    if not policy.discrete or all(rng is None for rng in rngs):
        return policy.greedy_action(output)
    u = torch.tensor([0.0 if rng is None else rng.random() for rng in rngs], device=output.device)
    cdf = output.float().softmax(-1).cumsum(-1)
    sampled = torch.searchsorted(cdf, u[:, None]).squeeze(1).clamp(max=output.shape[-1] - 1)
    return torch.where(torch.tensor([rng is not None for rng in rngs], device=output.device), sampled,
                       policy.greedy_action(output))


@torch.no_grad()
def rollout(policy, env, target_return: float, seed: int, episodes: int | None = None, max_steps: int | None = None,
            device="cpu", progress: str | None = None, sample_actions: bool = False) -> RolloutResult:
    """Runs ``episodes`` (default ``env.num_envs``) episodes over ``env``'s environments, each
    conditioned on ``target_return`` minus its rewards so far; ``max_steps`` cuts an episode that
    runs longer (None: only the env ends episodes). ``sample_actions``: discrete actions are drawn
    from the policy's logits (each episode's own seeded stream) instead of taken greedily.
    """
    if target_return is None:
        raise ValueError("evaluation.target_return is null and this environment has no default target: "
                         "set evaluation.target_return (or pass --target-return)")
    n = env.num_envs
    episodes = n if episodes is None else int(episodes)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    reset_idle = _autoreset_mode(env) == "DISABLED" and not getattr(env, "frozen_when_done", False)
    scale = float(getattr(policy.config, "return_scale", 1.0))
    row_episode = np.where(np.arange(n) < episodes, np.arange(n), -1)  # -1: no episode left for the row
    next_episode = min(n, episodes)
    obs, _ = env.reset(seed=[episode_seed(seed, k) if k >= 0 else None for k in row_episode.tolist()])
    rngs = [_sampling_rng(seed, k) if sample_actions and k >= 0 else None for k in row_episode.tolist()]
    state = policy.initial_state(n, device)
    action_shape = () if policy.discrete else (policy.config.act_dim,)
    last_action = torch.zeros((n, *action_shape), dtype=torch.long if policy.discrete else torch.float32,
                              device=device)
    last_reward = torch.zeros(n, device=device)
    to_go = np.full(n, target_return, np.float64)
    returns, lengths = np.zeros(episodes), np.zeros(episodes, np.int64)
    steps = np.zeros(n, np.int64)  # steps of each row's current episode
    asked = _RECORDING.get()
    tape = _Tape(min(asked[0], n), asked[1]) if asked is not None else None
    counted = 0
    with progress_bar(total=episodes, desc=progress, disable=progress is None, leave=False, unit="episode") as bar:
        while counted < episodes:
            bar.set_postfix_str(f"step {steps.max()}", refresh=False)  # a long episode shows it advances
            obs_t = torch.as_tensor(obs, device=device)
            to_go_seen = to_go / scale
            rtg = torch.as_tensor(to_go_seen, dtype=torch.float32, device=device)
            output, state = policy.act(state, obs_t, last_action, last_reward, rtg)
            last_action = _choose(policy, output, rngs)
            played, seen = last_action.cpu().numpy(), tape.observe(obs) if tape is not None else None
            obs, reward, terminated, truncated, _ = env.step(played)
            live = row_episode >= 0
            reward = np.where(live, np.asarray(reward, np.float64), 0.0)
            steps += live
            returns[row_episode[live]] += reward[live]
            lengths[row_episode[live]] = steps[live]
            to_go -= reward
            ended = live & (np.asarray(terminated) | np.asarray(truncated))
            if max_steps is not None:
                ended |= live & (steps >= max_steps)
            if tape is not None:
                tape.record(seen, played, reward, to_go_seen, ended)
            last_reward = torch.as_tensor(reward, dtype=torch.float32, device=device)
            if not ended.any():
                continue
            counted += int(ended.sum())
            bar.update(int(ended.sum()))
            rows = np.flatnonzero(ended)
            restart, idle = rows[:episodes - next_episode], rows[episodes - next_episode:]
            row_episode[restart] = np.arange(next_episode, next_episode + len(restart))
            row_episode[idle] = -1
            next_episode += len(restart)
            reset = restart if not reset_idle else rows
            if len(reset):
                mask = np.zeros(n, bool)
                mask[reset] = True
                seeds = [episode_seed(seed, k) if m and k >= 0 else None for k, m in zip(row_episode.tolist(), mask)]
                obs, _ = env.reset(seed=seeds, options={"reset_mask": mask})
            if len(restart):
                started = np.zeros(n, bool)
                started[restart] = True
                state = policy.reset(state, started)
                steps[restart], to_go[restart] = 0, target_return
                index = torch.as_tensor(restart, device=device)
                last_action, last_reward = last_action.index_fill(0, index, 0), last_reward.index_fill(0, index, 0)
                for r in restart:
                    rngs[r] = _sampling_rng(seed, int(row_episode[r])) if sample_actions else None
            for r in idle:
                rngs[r] = None
    if tape is not None:
        asked[2].append(tape.episodes())
    return RolloutResult(returns=returns, lengths=lengths, env_steps=int(lengths.sum()))


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
