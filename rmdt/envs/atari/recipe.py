"""Atari episodes recorded into a frame store, so users can make data without downloading anything.

    python datasets/atari.py --game Breakout --episodes 20                      # uniform random actions
    python datasets/atari.py --game Breakout --episodes 100 --policy runs/<run> --epsilon 0.05

Games are played ``--num-envs`` at a time by ``rmdt.evaluation.rollout`` (a checkpoint is conditioned
on ``--target-return``, by default the DT paper's for the game); each step's newest frame, the action
taken and the raw game score are stored (DQN-Replay's rewards are clipped to [-1, 1] instead).
Exploration draws from a generator seeded by ``--seed``, so the same arguments give the same store.
Without ``--out`` the store goes to ``<root>/<id>``, by default ``atari/`` beside the Minari datasets
folder (``data/atari`` in a checkout), and an existing one is reused.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from rmdt.models.policy import Policy

DEFAULTS = dict(game="Breakout", episodes=20, policy="random", epsilon=0.0, target_return=None, seed=0,
                num_envs=8, sticky_actions=0.0, max_steps=27_000)


def dataset_id(game: str, episodes: int, policy: str, epsilon: float, seed: int, sticky_actions: float,
               max_steps: int) -> str:
    from rmdt.envs.atari.env import rom_id

    tag = "random" if policy == "random" else \
        "ckpt" + hashlib.sha1(str(Path(policy).resolve()).encode()).hexdigest()[:8] + f"-eps{epsilon:g}"
    return f"{rom_id(game)}-{tag}-e{episodes}-s{seed}-sticky{sticky_actions:g}-t{max_steps}"


def default_root() -> Path:
    """Frame stores live beside the Minari datasets, so one setting places all of a user's data."""
    from rmdt.data.minari_source import datasets_root

    return datasets_root().parent / "atari"


class Explorer(torch.nn.Module, Policy):
    """Epsilon-greedy around a policy, or uniform random actions without one.

    It returns logits whose argmax is the action taken, so the rollout feeds the action actually
    played (not the policy's choice) back to the policy as ``last_action``.
    """

    discrete = True

    def __init__(self, num_actions: int, policy=None, epsilon: float = 0.0, seed: int = 0):
        super().__init__()
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"--epsilon must be in [0, 1], got {epsilon}")
        self.policy, self.num_actions = policy, num_actions
        self.epsilon = 1.0 if policy is None else epsilon
        self.config = policy.config if policy is not None else SimpleNamespace(return_scale=1.0)
        self.generator = torch.Generator().manual_seed(seed)

    def initial_state(self, batch_size: int, device=None):
        return self.policy.initial_state(batch_size, device) if self.policy is not None else None

    def act(self, state, obs, last_action, last_reward, return_to_go):
        n = obs.shape[0]
        if self.policy is not None:
            logits, state = self.policy.act(state, obs, last_action, last_reward, return_to_go)
        else:
            logits = torch.zeros(n, self.num_actions, device=obs.device)
        explore = torch.rand(n, generator=self.generator) < self.epsilon
        noise = torch.rand(n, self.num_actions, generator=self.generator)
        return torch.where(explore[:, None].to(logits.device), noise.to(logits), logits), state


class Recorder:
    """Wraps ``AtariEnvs``: keeps every game's newest frames, actions and rewards until it finishes.

    Only the first reset passes its seed on: seeding makes ALE reload the ROM (0.3 s per game here),
    and later rounds are just as reproducible continuing each game's random stream.
    """

    def __init__(self, env):
        self.env, self.num_envs, self.seeded = env, env.num_envs, False

    def reset(self, *, seed=None, options=None):
        self.obs, info = self.env.reset(seed=None if self.seeded else seed)
        self.seeded = True
        self.frames, self.actions, self.rewards = ([[] for _ in range(self.num_envs)] for _ in range(3))
        return self.obs, info

    def step(self, actions):
        live = np.flatnonzero(~self.env.done)
        for i in live:
            self.frames[i].append(self.obs[i, -1].copy())
            self.actions[i].append(int(actions[i]))
        self.obs, reward, terminated, truncated, info = self.env.step(actions)
        for i in live:
            self.rewards[i].append(float(reward[i]))
        return self.obs, reward, terminated, truncated, info


def build(game: str = DEFAULTS["game"], episodes: int = DEFAULTS["episodes"], policy: str = DEFAULTS["policy"],
          epsilon: float = DEFAULTS["epsilon"], target_return: float | None = DEFAULTS["target_return"],
          seed: int = DEFAULTS["seed"], num_envs: int = DEFAULTS["num_envs"],
          sticky_actions: float = DEFAULTS["sticky_actions"], max_steps: int = DEFAULTS["max_steps"],
          out=None, root=None, progress: bool = True) -> str:
    """Records ``episodes`` games into a frame store unless it is already there; returns its path."""
    from rmdt.data.frame_store import FrameStoreWriter, is_frame_store
    from rmdt.envs.atari.env import STACK, AtariEnvs
    from rmdt.envs.atari.evaluator import game_target
    from rmdt.evaluation import load_policy
    from rmdt.evaluation.rollout import rollout
    from rmdt.progress import progress_bar

    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    path = Path(out) if out else Path(root or default_root()) / dataset_id(game, episodes, policy, epsilon, seed,
                                                                     sticky_actions, max_steps)
    if is_frame_store(path):
        return str(path)
    trained = None if policy == "random" else load_policy(policy)
    with contextlib.closing(AtariEnvs(game, min(num_envs, episodes), sticky_actions=sticky_actions,
                                      max_steps=max_steps)) as env:
        if trained is not None and trained.config.num_actions != env.num_actions:
            raise ValueError(f"{policy}: trained with {trained.config.num_actions} actions but {env.game} has "
                             f"{env.num_actions}")
        explorer = Explorer(env.num_actions, trained, epsilon, seed)
        target = (target_return if target_return is not None else game_target(game)) if trained is not None else 0.0
        metadata = {"game": env.game, "policy": policy, "epsilon": explorer.epsilon, "target_return": target,
                    "seed": seed, "sticky_actions": sticky_actions, "max_steps": max_steps,
                    "rewards": "raw game score"}
        recorder = Recorder(env)
        with FrameStoreWriter(path, env.single_observation_space.shape[1:], env.num_actions, STACK,
                              metadata) as writer, \
                progress_bar(total=episodes, desc=f"{env.game} episodes", unit="episode", disable=not progress) as bar:
            recorded = 0
            while recorded < episodes:
                rollout(explorer, recorder, target, seed, max_steps=max_steps,
                        progress=f"{env.game} games {recorded}+" if progress else None)
                for i in range(min(env.num_envs, episodes - recorded)):
                    writer.add_episode(recorder.actions[i], recorder.rewards[i], np.stack(recorder.frames[i]))
                    bar.update()
                recorded += env.num_envs
            writer.finish()
    return str(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default=DEFAULTS["game"], help="ALE game, e.g. Breakout, Pong, Qbert, Seaquest")
    parser.add_argument("--episodes", type=int, default=DEFAULTS["episodes"], help="episodes to record")
    parser.add_argument("--policy", default=DEFAULTS["policy"], help="'random' or an rmdt checkpoint / run directory")
    parser.add_argument("--epsilon", type=float, default=DEFAULTS["epsilon"],
                        help="probability of a uniform random action instead of the checkpoint's")
    parser.add_argument("--target-return", type=float, default=DEFAULTS["target_return"],
                        help="checkpoint's target return (default: the DT paper's for the game)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of games and exploration")
    parser.add_argument("--num-envs", type=int, default=DEFAULTS["num_envs"], help="games played at once")
    parser.add_argument("--sticky-actions", type=float, default=DEFAULTS["sticky_actions"],
                        help="probability of repeating the last action (Dopamine: 0.25)")
    parser.add_argument("--max-steps", type=int, default=DEFAULTS["max_steps"], help="steps before a game is cut")
    parser.add_argument("--out", default=None, help="store directory (default: <root>/<id>)")
    parser.add_argument("--root", default=None, help="directory of stores (default: atari/ beside "
                                                     "the Minari datasets folder)")
    args = parser.parse_args(argv)
    from rmdt.data.frame_store import load_frame_store

    path = build(args.game, args.episodes, args.policy, args.epsilon, args.target_return, args.seed, args.num_envs,
                 args.sticky_actions, args.max_steps, args.out, args.root)
    print(f"frame store at {path}  (train with data.recipe=null data.dataset={path})")
    print(load_frame_store(path).summary())


if __name__ == "__main__":
    main()
