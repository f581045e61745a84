"""Atari throughput: training windows from a frame store, and evaluation env steps.

    python bench/atari.py [--steps 50000]

1. Windows/s of the RATE setting (K=30, N=3, batch 128, uniform starts) from a store of random
   84x84 frames on disk (memory-mapped; warm page cache), against the same frames held in RAM.
2. Env steps/s of ``AtariEnvs`` (ALE's C++ vector env, one thread) at several batch sizes, with the
   cost of building and seeding the games, against gymnasium's AtariPreprocessing +
   FrameStackObservation in a SyncVectorEnv; then a whole evaluation rollout with the RATE-size RMDT.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sampler import measure  # noqa: E402

from rmdt.data import SegmentSampler, Trajectories  # noqa: E402
from rmdt.data.frame_store import FrameStoreWriter, StackedFrames, load_frame_store  # noqa: E402


def write_store(path: Path, steps: int, episode_len: int = 1000) -> Trajectories:
    rng = np.random.default_rng(0)
    with FrameStoreWriter(path, (84, 84), num_actions=4) as writer:
        for first in range(0, steps, episode_len):
            n = min(episode_len, steps - first)
            writer.add_episode(rng.integers(0, 4, n), rng.choice([0.0, 1.0], n),
                               rng.integers(0, 256, (n, 84, 84), dtype=np.uint8))
        writer.finish()
    return load_frame_store(path)


def store_figures(steps: int, seconds: float = 5.0) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        on_disk = write_store(Path(tmp) / "store", steps)
        print(f"store: {steps:,} steps, {on_disk.observations.frames.nbytes / 2**20:,.0f} MB of frames, "
              f"written in {time.perf_counter() - start:.1f} s")
        view = on_disk.observations
        in_ram = Trajectories(observations=StackedFrames(np.array(view.frames), view.last_frame, view.stack),
                              actions=on_disk.actions, rewards=on_disk.rewards, episode_starts=on_disk.episode_starts,
                              num_actions=4)
        print(f"{'frames':<22}{'windows/s':>12}{'steps/s':>12}{'MB/s of states':>16}")
        for name, data in (("memory-mapped store", on_disk), ("in RAM", in_ram)):
            rate = measure(SegmentSampler(data, 30, 3, "uniform"), batch_size=128, seconds=seconds)
            print(f"{name:<22}{rate:>12,.0f}{rate * 90:>12,.0f}{rate * 90 * 4 * 84 * 84 / 2**20:>16,.0f}")


def env_rate(env, steps: int = 300) -> float:
    rng = np.random.default_rng(0)
    n = env.num_envs
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, 4, n))
    return steps * n / (time.perf_counter() - start)


def env_figures() -> None:
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    from rmdt.envs.atari import AtariEnvs

    print(f"\n{'Breakout, random actions':<40}{'env steps/s':>12}{'build+reset s':>15}")
    for n in (1, 8, 32):
        start = time.perf_counter()
        env = AtariEnvs("Breakout", n, max_steps=10**6)
        env.reset(seed=0)
        setup = time.perf_counter() - start
        print(f"{'AtariEnvs (ale_py vector), ' + str(n) + ' games':<40}{env_rate(env):>12,.0f}{setup:>15.1f}")
        env.close()
    gym.register_envs(ale_py)
    start = time.perf_counter()
    sync = gym.vector.SyncVectorEnv([lambda: FrameStackObservation(AtariPreprocessing(
        gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)), 4, padding_type="zero")] * 8)
    sync.reset(seed=0)
    setup = time.perf_counter() - start
    print(f"{'gymnasium AtariPreprocessing, 8 games':<40}{env_rate(sync):>12,.0f}{setup:>15.1f}")
    sync.close()


def rollout_figures(games: int = 8, steps: int = 100) -> None:
    import torch

    from rmdt.config import load_config
    from rmdt.envs.atari import AtariEnvs
    from rmdt.evaluation.rollout import rollout
    from rmdt.models.factory import build_policy

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "atari" / "breakout_rmdt.yaml")
    shape = Trajectories.from_episodes([(np.zeros((2, 4, 84, 84), np.uint8), np.zeros(2, np.int64),
                                         np.zeros(2, np.float32))], num_actions=4)
    torch.manual_seed(0)
    policy = build_policy(config, shape).eval()
    env = AtariEnvs("Breakout", games)
    start = time.perf_counter()
    out = rollout(policy, env, 90.0, seed=0, max_steps=steps)
    seconds = time.perf_counter() - start
    print(f"\nevaluation rollout, RATE-size RMDT (untrained, {sum(p.numel() for p in policy.parameters()):,} "
          f"parameters), {games} games x {out.steps} steps: {int(out.lengths.sum()) / seconds:,.0f} env steps/s "
          f"({seconds:.1f} s incl. seeding the games)")
    env.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50_000, help="steps in the synthetic store")
    args = parser.parse_args(argv)
    store_figures(args.steps)
    env_figures()
    rollout_figures()


if __name__ == "__main__":
    main()
