"""Window sampler throughput: batches of 64 windows of N=3 segments of K=30 steps.

    python bench/sampler.py

Uses the default T-Maze oracle data (6000 episodes, built in memory, not written to disk) and a
synthetic D4RL-like set of 1000-step episodes with 17-dim observations for the uniform mode.
"""
import time

import numpy as np

from rmdt.data import SegmentSampler, Trajectories
from rmdt.envs.registry import ENVS


def measure(sampler: SegmentSampler, batch_size: int = 64, seconds: float = 2.0) -> float:
    sampler.batch(0, batch_size)  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.batch(count, batch_size)
        count += 1
    return count * batch_size / (time.perf_counter() - start)


def main() -> None:
    buffers = ENVS.recipe("tmaze").oracle_buffers(episodes=6000, min_length=1, max_length=88, seed=0)
    tmaze = Trajectories.from_episodes([(b.observations[:-1], b.actions, b.rewards) for b in buffers],
                                       num_actions=4)
    rng = np.random.default_rng(0)
    episodes = [(rng.normal(size=(1000, 17)).astype(np.float32), rng.uniform(-1, 1, (1000, 6)).astype(np.float32),
                 rng.normal(size=1000).astype(np.float32)) for _ in range(1000)]
    locomotion = Trajectories.from_episodes(episodes)
    print(f"{'data':<28}{'starts':<10}{'windows/s':>12}{'us/window':>12}")
    for name, data, starts in (("tmaze 6000 episodes", tmaze, "episode"), ("tmaze 6000 episodes", tmaze, "uniform"),
                               ("1M steps, obs 17, act 6", locomotion, "uniform")):
        rate = measure(SegmentSampler(data, context_len=30, num_segments=3, window_starts=starts))
        print(f"{name:<28}{starts:<10}{rate:>12,.0f}{1e6 / rate:>12.1f}")


if __name__ == "__main__":
    main()
