"""d3rlpy's DecisionTransformer on a D4RL-layout file, as d3rlpy's own reproduction script sets it up
(reproductions/offline/decision_transformer.py), at the budget the caller gives; one JSON line out.

Run by bench/experiments/mujoco_peers.py under a Python that has d3rlpy (d3rlpy pins gymnasium 1.0, so it
lives in its own virtual environment; see docs/mujoco.md). Imports nothing from rmdt.
"""
import argparse
import json
import resource
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--env-id", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--warmup-steps", type=int, default=10000, help="d3rlpy's reproduction: 10,000")
    parser.add_argument("--targets", type=float, nargs="+", required=True)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--eval-seed", type=int, default=12345)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import d3rlpy
    import gymnasium as gym
    import h5py
    import torch

    torch.set_num_threads(args.threads)
    env = gym.make(args.env_id)  # before training: a missing MuJoCo dependency fails now, not after it
    with h5py.File(args.dataset, "r") as f:
        arrays = {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts")}
    arrays["timeouts"][-1] |= not arrays["terminals"][-1]  # a file cut mid-episode: its last episode ends there
    dataset = d3rlpy.dataset.MDPDataset(**arrays)
    d3rlpy.seed(args.seed)
    dt = d3rlpy.algos.DecisionTransformerConfig(
        batch_size=args.batch_size, learning_rate=args.lr,
        optim_factory=d3rlpy.optimizers.AdamWFactory(
            weight_decay=1e-4, clip_grad_norm=0.25,
            lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(warmup_steps=args.warmup_steps)),
        encoder_factory=d3rlpy.models.VectorEncoderFactory([128], exclude_last_activation=True),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(0.001),
        position_encoding_type=d3rlpy.PositionEncodingType.SIMPLE,
        context_size=20, num_heads=1, num_layers=3, max_timestep=1000,
    ).create(device=False)
    start = time.perf_counter()
    dt.fit(dataset, n_steps=args.steps, n_steps_per_epoch=args.steps, save_interval=10 ** 9, show_progress=False,
           logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    train_seconds = time.perf_counter() - start

    rows = []
    for target in args.targets:
        actor = dt.as_stateful_wrapper(target_return=target,
                                       action_sampler=d3rlpy.algos.IdentityTransformerActionSampler())
        returns = []
        for episode in range(args.episodes):
            actor.reset()
            obs, _ = env.reset(seed=args.eval_seed + episode)
            reward, total, done = 0.0, 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(actor.predict(obs, reward))
                total += reward
                done = terminated or truncated
            returns.append(total)
        rows.append({"target_return": target, "returns": returns, "mean_return": float(np.mean(returns))})
    with open(args.out, "w") as f:
        json.dump({"train_seconds": train_seconds, "steps": args.steps, "results": rows,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, f)


if __name__ == "__main__":
    main()
