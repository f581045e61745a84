"""Input pipeline: the sampler alone, loader windows/s with 0, 1 and 2 prefetch workers, and what a
training step eats.

    python bench/perf/loader.py [--seconds 3] [--repeats 3] [--json loader.json]
    python bench/perf/loader.py --sampler-only      # part 0 alone

Three datasets made on the spot: T-Maze oracle episodes (4-dim vectors, windows from episode starts),
a synthetic Atari frame store (random 84x84 frames in rmdt's store format, windows anywhere; batches
carry unique frames + an index) and Memory Maze-shaped episodes (64x64x3 uint8 frames in memory).

0. Sampler: windows/s of ``SegmentSampler`` (batches of 64 windows of 3 segments of 30 steps) on
   the T-Maze episodes, from episode starts and from anywhere, and on a synthetic D4RL-like set of
   1000-step episodes with 17-dim observations (1M steps) from anywhere.
1. Loader: windows/s of ``sampler.batch(step)`` called back to back, as the trainer calls it, with
   no prefetch, 1 and 2 prefetch threads (``data.prefetch``), and 2 worker processes (a process pool
   whose batches come back pickled), for comparison; for Atari also the stacks built on the host,
   as batches carried them before they carried unique frames + an index.
2. An accelerator-like consumer: after each batch the main thread sleeps as long as building a
   batch inline takes (a GPU step leaves the CPU free like this). Inline, a step costs sampler +
   sleep; prefetch hides the sampler when a step costs the sleep alone ("sampler time hidden":
   the share of the inline row's extra time over the sleep that prefetch removes).
3. Training step on the CPU (one torch thread, fp32, a small RMDT per dataset), per step: the same
   pre-built batch every step (no loader cost at all), the sampler inline (``data.prefetch=0``) and
   2 prefetch threads. Modes alternate in rounds (rotating their order) so they see the same
   machine load; medians.
   Prefetch hides the sampler when its step time equals the pre-built one within the spread.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from rmdt.atomic import write_text
from rmdt.config import load_config
from rmdt.data import SegmentSampler, Trajectories
from rmdt.data.prefetch import PrefetchingSampler
from rmdt.data.synthetic import random_frame_store, tmaze_oracle
from rmdt.data.throughput import windows_per_second
from rmdt.models.factory import build_policy

_WORKER_SAMPLER = None  # the sampler a pool process draws from (set by its initializer, inherited by fork)


QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "tmaze" / "quickstart.yaml"  # the model base


def _init_worker(sampler) -> None:
    global _WORKER_SAMPLER
    _WORKER_SAMPLER = sampler


def _draw(step: int, batch_size: int):
    return _WORKER_SAMPLER.batch(step, batch_size)


class ProcessSampler:
    """``batch(step)`` from a pool of forked processes, ``depth`` steps ahead (bench only: to compare)."""

    def __init__(self, sampler, workers: int, depth: int = 4):
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                                        initializer=_init_worker, initargs=(sampler,))
        self.depth, self.pending = depth, {}

    def batch(self, step: int, batch_size: int):
        for ahead in range(step, step + 1 + self.depth):
            if ahead not in self.pending:
                self.pending[ahead] = self.pool.submit(_draw, ahead, batch_size)
        return self.pending.pop(step).result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class HostStacks:
    """A frame store's observations hidden from the sampler's frame-store path, so that it builds
    every 4-frame stack on the host as before (the "stacks on the host" loader rows)."""

    def __init__(self, view):
        self.view, self.shape, self.dtype, self.ndim = view, view.shape, view.dtype, view.ndim

    def __len__(self) -> int:
        return len(self.view)

    def __getitem__(self, index):
        return self.view[index]


def atari_store(directory: Path, episodes: int, length: int) -> Trajectories:
    """A frame store of random frames, episodes of ``length / 2`` to ``length`` steps."""
    lengths = np.random.default_rng(0).integers(length // 2, length + 1, size=episodes)
    return random_frame_store(directory / "store", lengths)


def memory_maze_data(episodes: int, length: int, seed: int = 0) -> Trajectories:
    rng = np.random.default_rng(seed)
    return Trajectories.from_episodes(
        [(rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8), rng.integers(0, 6, length),
          (rng.random(length) < 0.01).astype(np.float32)) for _ in range(episodes)],
        source="memory-maze-shaped (memory)", num_actions=6)


def loader_rate(make, batch_size: int, seconds: float, consume: float = 0.0) -> float:
    """``windows_per_second`` of the loader ``make()`` builds, closed afterwards (threads, processes)."""
    loader = make()
    rate = windows_per_second(loader, batch_size, seconds, consume)
    if hasattr(loader, "close"):
        loader.close()
    return rate


def locomotion_data(episodes: int, seed: int = 0) -> Trajectories:
    """D4RL-locomotion-shaped episodes: 1000 steps of 17-dim observations and 6-dim actions."""
    rng = np.random.default_rng(seed)
    return Trajectories.from_episodes(
        [(rng.normal(size=(1000, 17)).astype(np.float32), rng.uniform(-1, 1, (1000, 6)).astype(np.float32),
          rng.normal(size=1000).astype(np.float32)) for _ in range(episodes)], source="locomotion-shaped (memory)")


def sampler_rates(tmaze: Trajectories, locomotion: Trajectories, seconds: float) -> list[dict]:
    """Part 0: windows/s of the sampler alone, by data and window starts; prints its table."""
    rows = []
    print(f"{'data':<32}{'starts':<10}{'windows/s':>12}{'us/window':>12}")
    for name, data, starts in ((f"T-Maze {tmaze.num_episodes} episodes", tmaze, "episode"),
                               (f"T-Maze {tmaze.num_episodes} episodes", tmaze, "uniform"),
                               (f"{locomotion.num_steps:,} steps, obs 17, act 6", locomotion, "uniform")):
        rate = windows_per_second(SegmentSampler(data, 30, 3, starts), 64, seconds)
        rows.append({"data": name, "starts": starts, "batch": 64, "windows_per_s": rate})
        print(f"{name:<32}{starts:<10}{rate:>12,.0f}{1e6 / rate:>12.1f}", flush=True)
    return rows


def step_times(policy, sampler, batch_size: int, steps: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per optimizer step in each mode, modes alternating over ``repeats`` rounds."""
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-4)
    fixed = sampler.batch(10**6, batch_size)
    modes = {"pre-built batch": lambda: fixed, "sampler inline": lambda: sampler,
             "prefetch 2 threads": lambda: PrefetchingSampler(sampler, 2)}
    times = {name: [] for name in modes}
    first = 0
    names = list(modes)
    for round_ in range(repeats):
        for name in names[round_ % 3:] + names[:round_ % 3]:  # each mode takes each slot in turn
            make = modes[name]
            source = make()
            draw = (lambda s: fixed) if name == "pre-built batch" else (lambda s: source.batch(s, batch_size))
            draw(first)  # warm-up (prefetch: starts the queue)
            start = time.perf_counter()
            for s in range(first + 1, first + 1 + steps):
                loss, _ = policy.loss(draw(s).to("cpu"))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            times[name].append((time.perf_counter() - start) / steps)
            if hasattr(source, "close"):
                source.close()
            first += steps + 10  # fresh steps each time: nothing cached
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per loader measurement")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the training-step comparison")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per mode and round")
    parser.add_argument("--tiny", action="store_true", help="small data and few steps (the test)")
    parser.add_argument("--sampler-only", action="store_true", help="part 0 only: the sampler alone")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tmaze = tmaze_oracle(200 if args.tiny else 6000, 88)
    report = {"sampler": sampler_rates(tmaze, locomotion_data(10 if args.tiny else 1000), args.seconds),
              "loader": [], "consumer": [], "step": []}
    if args.sampler_only:
        if args.json:
            write_text(args.json, json.dumps(report, indent=1))
        return
    print()
    with tempfile.TemporaryDirectory() as tmp:
        datasets = [  # name, trajectories, window starts, batch size (loader), model overrides, batch (step)
            ("T-Maze", tmaze, "episode", 64,
             ["model.memory_tokens=8", "model.d_model=64", "model.n_layers=2"], 64),
            ("Atari", atari_store(Path(tmp), 4 if args.tiny else 20, 200 if args.tiny else 1000), "uniform", 128,
             ["model.obs_encoder=nature_cnn", "model.memory_tokens=15", "model.d_model=64", "model.n_layers=2"], 8),
            ("Memory Maze", memory_maze_data(3 if args.tiny else 16, 300 if args.tiny else 1000), "uniform", 128,
             ["model.obs_encoder=nature_cnn", "model.memory_tokens=15", "model.d_model=64", "model.n_layers=2"], 8),
        ]
        print(f"{'data':<13}{'loader':<30}{'windows/s':>11}{'ms/batch':>10}")
        for name, data, starts, batch_size, model, step_batch in datasets:
            sampler = SegmentSampler(data, 30, 3, starts, seed=0)
            makers = {"no prefetch": lambda: sampler, "1 thread": lambda: PrefetchingSampler(sampler, 1),
                      "2 threads": lambda: PrefetchingSampler(sampler, 2),
                      "2 processes": lambda: ProcessSampler(sampler, 2)}
            if name == "Atari":
                host = Trajectories(HostStacks(data.observations), data.actions, data.rewards, data.episode_starts,
                                    num_actions=data.num_actions)
                makers["stacks on the host (before)"] = lambda: SegmentSampler(host, 30, 3, starts, seed=0)
            for loader, make in makers.items():
                rate = loader_rate(make, batch_size, args.seconds)
                report["loader"].append({"data": name, "loader": loader, "batch": batch_size, "windows_per_s": rate})
                print(f"{name:<13}{loader:<30}{rate:>11,.0f}{1e3 * batch_size / rate:>10.1f}", flush=True)
            inline = 1e3 * batch_size / next(r["windows_per_s"] for r in report["loader"]
                                             if r["data"] == name and r["loader"] == "no prefetch")
            for loader in ("no prefetch", "1 thread", "2 threads"):
                rate = loader_rate(makers[loader], batch_size, args.seconds, consume=inline / 1e3)
                report["consumer"].append({"data": name, "loader": loader, "sleep_ms": inline,
                                           "step_ms": 1e3 * batch_size / rate})
            config = load_config(QUICKSTART, model + ["data.context_len=30", "data.num_segments=3"])
            torch.manual_seed(0)
            times = step_times(build_policy(config, data).train(), sampler, step_batch,
                               1 if args.tiny else args.steps, args.repeats)
            report["step"].append({"data": name, "batch": step_batch, "seconds": times})
        print(f"\n{'accelerator-like step':<24}{'loader':<14}{'sleep ms':>10}{'ms/step':>10}"
              f"{'sampler time hidden':>21}")
        for row in report["consumer"]:  # share of the inline sampler's cost (same block) that prefetch removes
            inline = next(r["step_ms"] for r in report["consumer"] if r["data"] == row["data"]
                          and r["loader"] == "no prefetch")
            hidden = (inline - row["step_ms"]) / max(inline - row["sleep_ms"], 1e-9)
            print(f"{row['data']:<24}{row['loader']:<14}{row['sleep_ms']:>10.1f}{row['step_ms']:>10.1f}"
                  f"{hidden:>21.0%}")
        print(f"\n{'data':<13}{'batch':>6}  {'step mode':<22}{'ms/step (median)':>17}{'min-max':>16}"
              f"{'vs pre-built':>14}{'windows/s eaten':>17}")
        for row in report["step"]:
            base = float(np.median(row["seconds"]["pre-built batch"]))
            for mode, values in row["seconds"].items():
                median = float(np.median(values))
                print(f"{row['data']:<13}{row['batch']:>6}  {mode:<22}{1e3 * median:>17.1f}"
                      f"{f'{1e3 * min(values):.0f}-{1e3 * max(values):.0f}':>16}{median / base:>13.2f}x"
                      f"{row['batch'] / median:>17,.1f}")
    if args.json:
        write_text(args.json, json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
