"""RMDT training and evaluation throughput in the RATE T-Maze configuration.

    python bench/rmdt_throughput.py [--threads 1] [--precision no bf16] [--batches 3]

RATE's T-Maze setting: 10 layers, d_model 64, 4 heads, 15 memory tokens, K=50, N=3, batch 128.
Prints seconds per training batch (forward + backward + AdamW step, gradients through all three
segments), windows/s and tokens/s, and evaluation steps/s with 100 T-Maze corridors stepped
together through ``act``, for each precision in one run (compare their ratio, not absolute
times, on a shared machine). The RATE reference needs about 37 s per training batch on one thread
here and about 1 s per evaluation step of 100 environments (it re-runs the window every step).
"""
import argparse
import time

import torch

from rmdt.data import SegmentSampler, Trajectories
from rmdt.envs.registry import ENVS
from rmdt.envs.tmaze.env import TMazeVectorEnv
from rmdt.evaluation.rollout import rollout
from rmdt.models import RMDTConfig, RMDTModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the reference figure is 1)")
    parser.add_argument("--precision", choices=["no", "bf16"], nargs="+", default=["no", "bf16"],
                        help="CPU autocast settings to compare")
    parser.add_argument("--batches", type=int, default=3, help="timed training batches")
    parser.add_argument("--memory-update", default="replace", help="replace, mrv or gated")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    K, N, batch_size = 50, 3, 128
    buffers = ENVS.recipe("tmaze").oracle_buffers(episodes=2000, min_length=1, max_length=K * N - 2, seed=0)
    data = Trajectories.from_episodes([(b.observations[:-1], b.actions, b.rewards) for b in buffers], num_actions=4)
    sampler = SegmentSampler(data, K, N)
    config = RMDTConfig(obs_shape=[4], num_actions=4, context_len=K, memory_tokens=15, d_model=64, n_layers=10,
                        n_heads=4, dropout=0.0, memory_update=args.memory_update)
    print(f"threads {args.threads}, memory update {args.memory_update}, "
          f"{sum(p.numel() for p in RMDTModel(config).parameters()):,} parameters, batch {batch_size}, K={K}, N={N}")
    tokens = batch_size * N * (3 * K + 2 * config.memory_tokens)
    for precision in args.precision:
        torch.manual_seed(0)
        model = RMDTModel(config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

        def train_step(step: int) -> None:
            with autocast:
                loss, _ = model.loss(sampler.batch(step, batch_size))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        train_step(0)  # warm-up
        start = time.perf_counter()
        for step in range(1, args.batches + 1):
            train_step(step)
        per_batch = (time.perf_counter() - start) / args.batches
        print(f"[{precision:>4}] training   {per_batch:8.2f} s/batch   {batch_size / per_batch:8.1f} windows/s   "
              f"{tokens / per_batch:10,.0f} tokens/s   (RATE reference: ~37 s/batch)")

        model.eval()
        env = TMazeVectorEnv(100, 2 * K * N)
        with autocast:
            rollout(model, env, target_return=1.0, seed=0, max_steps=K + 2)  # warm-up
            start = time.perf_counter()
            out = rollout(model, env, target_return=1.0, seed=1, max_steps=2 * K * N + 2)
        seconds = time.perf_counter() - start
        steps = int(out.lengths.max())  # all 100 corridors run in lockstep
        print(f"[{precision:>4}] evaluation {seconds / steps * 1e3:8.1f} ms/step of 100 envs   "
              f"{steps / seconds:8.1f} steps/s   {out.env_steps / seconds:10,.0f} env steps/s   "
              "(RATE reference: ~1 s/step)")


if __name__ == "__main__":
    main()
