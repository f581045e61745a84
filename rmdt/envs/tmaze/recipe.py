"""T-Maze oracle dataset: episodes of the optimal policy with corridor lengths drawn from a range.

    python datasets/tmaze.py --episodes 6000 --min-length 1 --max-length 88 --seed 0

The dataset id encodes every argument, so building twice with the same arguments finds the first
build and reuses it; the same arguments always give identical arrays (all randomness comes from
``seed``). RATE trains on lengths uniform in [1, K*N - 2]: 88 for K=30, N=3.
"""
from __future__ import annotations

import argparse

import numpy as np

from rmdt.envs.recipe_cli import add_root_argument, show_dataset

DEFAULTS = dict(episodes=6000, min_length=1, max_length=88, seed=0)


def dataset_id(episodes: int, min_length: int, max_length: int, seed: int) -> str:
    return f"rmdt/tmaze-oracle-e{episodes}-l{min_length}to{max_length}-s{seed}-v0"


def oracle_buffers(episodes: int, min_length: int, max_length: int, seed: int) -> list:
    """Rolls the oracle out in all corridors at once; returns one ``EpisodeBuffer`` per episode."""
    from minari.data_collector import EpisodeBuffer

    from rmdt.envs.tmaze.env import DOWN, RIGHT, UP, TMazeVectorEnv

    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if not 1 <= min_length <= max_length:
        raise ValueError(f"need 1 <= --min-length <= --max-length, got {min_length}, {max_length}")
    # Independent streams for lengths and for the env (clues, noise): seeding both with `seed`
    # would draw the same numbers and tie each clue to its corridor length.
    length_seed, env_seed = np.random.SeedSequence(seed).generate_state(2)
    lengths = np.random.default_rng(length_seed).integers(min_length, max_length + 1, size=episodes)
    env = TMazeVectorEnv(episodes, lengths)
    obs, info = env.reset(seed=int(env_seed))
    turn = np.where(info["clue"] > 0, UP, DOWN)
    observations, actions, rewards, terminated, truncated = [obs], [], [], [], []
    for t in range(int(lengths.max()) + 1):
        action = np.where(t < lengths, RIGHT, turn)
        obs, reward, term, trunc, _ = env.step(action)
        observations.append(obs), actions.append(action), rewards.append(reward)
        terminated.append(term), truncated.append(trunc)
    observations, actions, rewards = np.stack(observations, 1), np.stack(actions, 1), np.stack(rewards, 1)
    terminated, truncated = np.stack(terminated, 1), np.stack(truncated, 1)
    buffers = []
    for i, steps in enumerate(lengths + 1):  # the oracle takes L + 1 steps
        buffers.append(EpisodeBuffer(
            id=i, observations=observations[i, : steps + 1], actions=actions[i, :steps],
            rewards=rewards[i, :steps], terminations=terminated[i, :steps],
            truncations=truncated[i, :steps], infos={}))
    return buffers


def build(episodes: int = DEFAULTS["episodes"], min_length: int = DEFAULTS["min_length"],
          max_length: int = DEFAULTS["max_length"], seed: int = DEFAULTS["seed"], root=None) -> str:
    """Builds the dataset unless it is already on disk; returns its id."""
    import gymnasium as gym

    from rmdt.data.minari_source import metadata_file, write_minari
    from rmdt.envs.tmaze.env import TMazeEnv

    name = dataset_id(episodes, min_length, max_length, seed)
    if metadata_file(name, root).is_file():
        return name
    write_minari(
        name, oracle_buffers(episodes, min_length, max_length, seed), root=root,
        env=gym.spec("rmdt/TMaze-v0"), observation_space=TMazeEnv.observation_space,
        action_space=TMazeEnv.action_space, algorithm_name="oracle",
        description=f"T-Maze oracle: {episodes} episodes, corridor lengths uniform in "
                    f"[{min_length}, {max_length}], seed {seed}",
        requirements=["rmdt"])
    return name


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=DEFAULTS["episodes"], help="number of episodes")
    parser.add_argument("--min-length", type=int, default=DEFAULTS["min_length"], help="shortest corridor")
    parser.add_argument("--max-length", type=int, default=DEFAULTS["max_length"], help="longest corridor")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of lengths, clues and noise")
    add_root_argument(parser)
    args = parser.parse_args(argv)
    name = build(args.episodes, args.min_length, args.max_length, args.seed, args.root)
    show_dataset(name, args.root)


if __name__ == "__main__":
    main()
