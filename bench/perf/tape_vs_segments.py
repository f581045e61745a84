"""Training cost of tape batching versus padded segments for one memoroid model, measured side by
side in one process (batches alternate, so load from other processes hits both alike).

    OMP_NUM_THREADS=1 python bench/perf/tape_vs_segments.py [configs/tmaze/ffm.yaml configs/tmaze/ffm_segments.yaml] \
        [--steps 20] [--set KEY=VALUE ...]

For each config: ms per optimizer step (forward + backward + AdamW, best of ``--steps``), steps
per batch (computed, and real ones that the loss counts) and real steps trained per second.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from rmdt.config import load_config
from rmdt.data import build_sampler, load_config_data
from rmdt.models.factory import build_policy
from rmdt.training.optim import make_optimizer

ROOT = Path(__file__).resolve().parents[2]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", default=[str(ROOT / "configs" / "tmaze" / name)
                                                       for name in ("ffm.yaml", "ffm_segments.yaml")])
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per config")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="overrides of every config")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    runs = []
    for path in args.configs:
        config = load_config(path, args.set)
        trajectories = load_config_data(config.data)
        torch.manual_seed(0)
        policy = build_policy(config, trajectories).train()
        optimizer, _ = make_optimizer(policy, config)
        runs.append((path, config, build_sampler(config.data, trajectories, 0), policy, optimizer, []))
    for step in range(args.steps + 1):
        for _, config, sampler, policy, optimizer, times in runs:
            batch = sampler.batch(step, config.training.batch_size)
            start = time.perf_counter()
            loss, _ = policy.loss(batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:  # the first step warms up
                times.append(time.perf_counter() - start)
    print("| config | batching | steps per batch (real) | ms per optimizer step | real steps/s |")
    print("|---|---|---|---|---|")
    for path, config, sampler, _, _, times in runs:
        batch = sampler.batch(0, config.training.batch_size)
        real, computed = int(batch.mask.sum()), batch.mask.numel()
        best = min(times)
        shown = Path(path).resolve()
        shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else path
        print(f"| {shown} | {config.data.batching} | {computed} ({real}) | {1000 * best:.0f} | {real / best:,.0f} |")


if __name__ == "__main__":
    main()
