"""Datasets made on the spot, for benchmarks and checks that must not download or build anything.

``tmaze_oracle`` rolls T-Maze's oracle out straight into memory (no Minari dataset is written or
imported); ``random_frame_store`` writes random 84x84 frames in rmdt's frame-store format, so the
samplers read them exactly as they read a converted Atari dataset.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rmdt.data.frame_store import FrameStoreWriter, load_frame_store
from rmdt.data.trajectories import Trajectories


def tmaze_oracle(episodes: int, max_length: int, seed: int = 0) -> Trajectories:
    """T-Maze oracle episodes, corridor lengths uniform in [1, ``max_length``], in memory."""
    from rmdt.envs.tmaze.env import TMazeEnv, oracle_actions

    rng = np.random.default_rng(seed)
    triples = []
    for i, length in enumerate(rng.integers(1, max_length + 1, size=episodes)):
        env = TMazeEnv(corridor_length=int(length))
        obs, info = env.reset(seed=seed * 100_003 + i)
        actions, observations, rewards = oracle_actions(int(length), info["clue"]), [obs], []
        for action in actions:
            obs, reward, *_ = env.step(int(action))
            observations.append(obs)
            rewards.append(reward)
        triples.append((np.stack(observations[:-1]), actions, np.asarray(rewards, np.float32)))
    return Trajectories.from_episodes(triples, source="tmaze-oracle (memory)", num_actions=4)


def random_frame_store(path, lengths, seed: int = 0, reward_rate: float = 0.1) -> Trajectories:
    """A frame store at ``path`` of one episode per entry of ``lengths``: random 84x84 uint8 frames,
    4 random actions, rewards 1 with probability ``reward_rate`` (else 0); loaded back memory-mapped."""
    rng = np.random.default_rng(seed)
    with FrameStoreWriter(Path(path), (84, 84), num_actions=4) as writer:
        for n in map(int, lengths):
            writer.add_episode(rng.integers(0, 4, n), (rng.random(n) < reward_rate).astype(np.float32),
                               rng.integers(0, 256, (n, 84, 84), dtype=np.uint8))
        writer.finish()
    return load_frame_store(path)
