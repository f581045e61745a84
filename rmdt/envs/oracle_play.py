"""What the oracle recipes share: episodes of a (privileged) oracle with a share of random actions,
their reference returns, and writing them as a Minari dataset.

Episode i resets its environment with a seed drawn from (seed, i) and draws its random actions
from a second stream of the same pair, so an episode never depends on how many come before it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rmdt.envs.recipe_cli import add_root_argument

REFERENCE_EPISODES = 100  # episodes behind each reference return (ref_min_score, ref_max_score)


def check_arguments(episodes: int, random_share: float) -> None:
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    if not 0 <= random_share <= 1:
        raise ValueError(f"--random-share must be in [0, 1], got {random_share}")


def run_episode(env, act: Callable, env_seed: int, rng: np.random.Generator, random_share: float):
    """One episode; ``act(env)`` is the oracle's action (an index of ``env.action_space``) at the
    current step. Returns observations (steps + 1), actions, rewards, terminations, truncations."""
    obs, _ = env.reset(seed=env_seed)
    observations, actions, rewards, terms, truncs = [obs], [], [], [], []
    done = False
    while not done:
        explore = random_share > 0 and rng.random() < random_share
        action = int(rng.integers(env.action_space.n)) if explore else int(act(env))
        obs, reward, terminated, truncated, _ = env.step(action)
        observations.append(obs), actions.append(action), rewards.append(float(reward))
        terms.append(terminated), truncs.append(truncated)
        done = terminated or truncated
    return (np.stack(observations), np.asarray(actions, np.int64), np.asarray(rewards, np.float64),
            np.asarray(terms), np.asarray(truncs))


def play(env, make_act: Callable, episodes: int, random_share: float, seed: int, desc: str | None = None) -> list:
    """``episodes`` episodes in ``env``; ``make_act()`` gives each episode a fresh oracle.
    ``desc``: show a progress bar with this label."""
    check_arguments(episodes, random_share)
    runs = range(episodes)
    if desc is not None:
        from rmdt.progress import progress_bar

        runs = progress_bar(iterable=runs, desc=desc, unit="episode")
    out = []
    for i in runs:
        env_seed, action_seed = np.random.SeedSequence([seed, i]).generate_state(2)
        out.append(run_episode(env, make_act(), int(env_seed), np.random.default_rng(action_seed), random_share))
    return out


def references(env, make_act: Callable, seed: int) -> tuple[float, float]:
    """Mean returns of uniformly random play and of the oracle, on seeds no dataset episode uses
    (datasets use (seed, i); references (2^31 + seed, i))."""
    means = [np.mean([e[2].sum() for e in play(env, make_act, REFERENCE_EPISODES, share, 2**31 + seed)])
             for share in (1.0, 0.0)]
    return float(means[0]), float(means[1])


def write(name: str, episodes: list, env, env_id: str, references: tuple[float, float], root=None, **kwargs) -> None:
    """The episodes as Minari dataset ``name`` (atomically), with the reference returns."""
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    from rmdt.data.minari_source import write_minari

    buffers = [EpisodeBuffer(id=i, observations=o, actions=a, rewards=r, terminations=te, truncations=tr, infos={})
               for i, (o, a, r, te, tr) in enumerate(episodes)]
    write_minari(name, buffers, root=root, env=gym.spec(env_id), observation_space=env.observation_space,
                 action_space=env.action_space, algorithm_name="privileged-oracle", ref_min_score=references[0],
                 ref_max_score=references[1], num_episodes_average_score=REFERENCE_EPISODES, **kwargs)


def build(name: str, make_env: Callable, make_act: Callable, env_id: str, episodes: int, random_share: float,
          seed: int, root=None, desc: str | None = None, **kwargs) -> str:
    """Dataset ``name`` (reused if on disk): ``episodes`` of the oracle in a fresh ``make_env()``, and the
    reference returns in another; ``kwargs`` go to ``write``. Returns ``name``."""
    from rmdt.data.minari_source import metadata_file

    if metadata_file(name, root).is_file():
        return name
    env = make_env()
    try:
        data = play(env, make_act, episodes, random_share, seed, desc)
    finally:
        env.close()
    env = make_env()
    try:
        write(name, data, env, env_id, references(env, make_act, seed), root=root, **kwargs)
    finally:
        env.close()
    return name


def add_play_arguments(parser, defaults: dict) -> None:
    """The options every oracle recipe's command line shares: --episodes, --random-share, --seed, --root."""
    parser.add_argument("--episodes", type=int, default=defaults["episodes"], help="number of episodes")
    parser.add_argument("--random-share", type=float, default=defaults["random_share"],
                        help="probability of a uniformly random action instead of the oracle's at each step")
    parser.add_argument("--seed", type=int, default=defaults["seed"], help="seed of environments and random actions")
    add_root_argument(parser)
