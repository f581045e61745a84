"""Atari throughput: training windows from a frame store, and evaluation env steps.

    python bench/perf/atari.py [--steps 50000]
    python bench/perf/atari.py --quick      # tiny sizes, every part: seconds (the tests)

1. Windows/s of the RATE setting (K=30, N=3, batch 128, uniform starts) from a store of random
   84x84 frames on disk (memory-mapped; warm page cache), against the same frames held in RAM.
2. Env steps/s of ``AtariEnvs`` (ALE's C++ vector env, one thread) at several batch sizes, with the
   cost of building and seeding the games, against gymnasium's AtariPreprocessing +
   FrameStackObservation in a SyncVectorEnv; then a whole evaluation rollout with the RATE-size RMDT.
3. Seconds per training step of the RATE-size RMDT on windows from the store.
4. Rows/s of the DQN-Replay importer on a checkpoint of real Breakout frames.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from rmdt.data import SegmentSampler, Trajectories
from rmdt.data.frame_store import StackedFrames
from rmdt.data.synthetic import random_frame_store
from rmdt.data.throughput import windows_per_second


def write_store(path: Path, steps: int, episode_len: int = 1000) -> Trajectories:
    """A store of random frames, ``steps`` in all, in episodes of ``episode_len`` (the last one shorter)."""
    return random_frame_store(path, [min(episode_len, steps - first) for first in range(0, steps, episode_len)])


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
            rate = windows_per_second(SegmentSampler(data, 30, 3, "uniform"), batch_size=128, seconds=seconds)
            print(f"{name:<22}{rate:>12,.0f}{rate * 90:>12,.0f}{rate * 90 * 4 * 84 * 84 / 2**20:>16,.0f}")


def env_rate(env, steps: int = 300) -> float:
    rng = np.random.default_rng(0)
    n = env.num_envs
    start = time.perf_counter()
    for _ in range(steps):
        env.step(rng.integers(0, 4, n))
    return steps * n / (time.perf_counter() - start)


def env_figures(repeats: int = 5, sizes=(1, 8, 32), steps: int = 200) -> None:
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    from rmdt.envs.atari.env import AtariEnvs

    print(f"\n{'Breakout, random actions':<40}{'env steps/s':>12}{'build+reset s':>15}")
    for n in sizes:
        start = time.perf_counter()
        env = AtariEnvs("Breakout", n, max_steps=10**6)
        env.reset(seed=0)
        setup = time.perf_counter() - start
        rate = np.median([env_rate(env, steps) for _ in range(3)])
        print(f"{'AtariEnvs (ale_py vector), ' + str(n) + ' games':<40}{rate:>12,.0f}{setup:>15.1f}")
        env.close()
    # The two 8-game envs alternate, so both see the same load on a shared machine.
    gym.register_envs(ale_py)
    sync = gym.vector.SyncVectorEnv([lambda: FrameStackObservation(AtariPreprocessing(
        gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0)), 4, padding_type="zero")] * 8)
    sync.reset(seed=0)
    ours = AtariEnvs("Breakout", 8, max_steps=10**6)
    ours.reset(seed=0)
    pairs = np.array([(env_rate(ours, steps), env_rate(sync, steps)) for _ in range(repeats)])
    print(f"8 games, {repeats} alternating runs: AtariEnvs {np.median(pairs[:, 0]):,.0f} vs gymnasium "
          f"AtariPreprocessing + SyncVectorEnv {np.median(pairs[:, 1]):,.0f} env steps/s "
          f"(ratio {np.median(pairs[:, 0] / pairs[:, 1]):.2f}, range {np.min(pairs[:, 0] / pairs[:, 1]):.2f}-"
          f"{np.max(pairs[:, 0] / pairs[:, 1]):.2f})")
    sync.close()
    ours.close()


def rate_policy():
    """The RATE-size RMDT of configs/atari/breakout_rmdt.yaml, untrained, for 4x84x84 Breakout states."""
    import torch

    from rmdt.config import load_config
    from rmdt.models.factory import build_policy

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "atari" / "breakout_rmdt.yaml")
    shape = Trajectories.from_episodes([(np.zeros((2, 4, 84, 84), np.uint8), np.zeros(2, np.int64),
                                         np.zeros(2, np.float32))], num_actions=4)
    torch.manual_seed(0)
    return build_policy(config, shape)


def train_figures(steps: int = 4000, batch_size: int = 16, repeats: int = 3) -> None:
    """Seconds per optimizer step of the RATE-size RMDT (fp32, gradients through all 3 segments)."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        sampler = SegmentSampler(write_store(Path(tmp) / "store", steps), 30, 3, "uniform")
        policy = rate_policy().train()
        optimizer = torch.optim.AdamW(policy.parameters(), lr=6e-4)
        times = []
        for step in range(repeats + 1):
            batch = sampler.batch(step, batch_size)
            start = time.perf_counter()
            loss, _ = policy.loss(batch.to("cpu"))  # gathers the frame stacks
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            times.append(time.perf_counter() - start)
        per_step = float(np.median(times[1:]))
        print(f"\ntraining, RATE-size RMDT, batch {batch_size} windows of 3x30 steps, {torch.get_num_threads()} "
              f"thread(s): {per_step:.1f} s per step, {batch_size / per_step:.1f} windows/s")


def rollout_figures(games: int = 8, steps: int = 100) -> None:
    from rmdt.envs.atari.env import AtariEnvs
    from rmdt.evaluation.rollout import rollout

    policy = rate_policy().eval()
    env = AtariEnvs("Breakout", games)
    start = time.perf_counter()
    out = rollout(policy, env, 90.0, seed=0, max_steps=steps)
    seconds = time.perf_counter() - start
    print(f"\nevaluation rollout, RATE-size RMDT (untrained, {sum(p.numel() for p in policy.parameters()):,} "
          f"parameters), {games} games x {out.lengths.max()} steps: {out.env_steps / seconds:,.0f} env steps/s "
          f"({seconds:.1f} s incl. seeding the games)")
    env.close()


def replay_figures(rows: int = 20_000) -> None:
    """Conversion speed of a DQN-Replay checkpoint of real Breakout frames (random play), gzip level 9
    as Dopamine writes them; the rate predicts the time per 1M-row checkpoint."""
    import gzip

    from rmdt.data.dqn_replay import convert
    from rmdt.envs.atari.env import AtariEnvs

    env = AtariEnvs("Breakout", 8, max_steps=rows)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    frames = []
    while len(frames) * 8 < rows:
        frames.append(obs[:, -1])
        obs, *_ = env.step(rng.integers(0, 4, 8))
    env.close()
    observation = np.concatenate(frames)[:rows]
    observation[:3] = 0  # the padding rows of the one episode this buffer holds
    terminal = np.zeros(rows, np.uint8)
    terminal[-1] = 1
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp) / "Breakout" / "1" / "replay_logs"
        logs.mkdir(parents=True)
        arrays = {"$store$_observation": observation, "$store$_action": np.zeros(rows, np.int32),
                  "$store$_reward": np.zeros(rows, np.float32), "$store$_terminal": terminal,
                  "add_count": np.array(rows)}
        for name, array in arrays.items():
            with gzip.open(logs / f"{name}_ckpt.0.gz", "wb", compresslevel=9) as f:
                np.save(f, array)
        size = (logs / "$store$_observation_ckpt.0.gz").stat().st_size
        start = time.perf_counter()
        convert(logs.parent, Path(tmp) / "store", progress=False)
        seconds = time.perf_counter() - start
    print(f"\nDQN-Replay conversion, {rows:,} real Breakout frames ({observation.nbytes / 2**20:,.0f} MB, "
          f"{size / 2**20:,.1f} MB gzipped): {rows / seconds:,.0f} rows/s, "
          f"{observation.nbytes / 2**20 / seconds:,.0f} MB/s -> ~{1e6 / (rows / seconds):,.0f} s per 1M-row checkpoint")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=None, help="steps in the synthetic store (default 50000)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and short timings: checks every part runs")
    args = parser.parse_args(argv)
    if args.quick:
        store_figures(args.steps or 2500, seconds=0.05)
        env_figures(repeats=1, sizes=(1, 2), steps=5)
        rollout_figures(games=2, steps=3)
        train_figures(steps=400, batch_size=2, repeats=1)
        replay_figures(rows=2000)
        return
    store_figures(args.steps or 50_000)
    env_figures()
    rollout_figures()
    train_figures()
    replay_figures()


if __name__ == "__main__":
    main()
