"""Memory Maze throughput: env steps/s, oracle steps/s and evaluation steps/s.

    MUJOCO_GL=egl python bench/perf/memory_maze.py [--steps 200] [--envs 4] [--threads 1]

Env: random actions in one 9x9 maze at 64x64 (build and reset timed apart: a seeded reset rebuilds
the maze). Oracle: the same with the BFS oracle of rmdt.envs.memory_maze.recipe choosing every action
(planning time also shown per call). Evaluation: an untrained RMDT of the paper's size
(configs/memory_maze/rmdt.yaml) rolled out by the evaluator in ``--envs`` mazes, mazes built
and reset included, as ``evaluate.py`` reports it; the policy's share of that time is shown.
``--reference N`` also prints the return of random play and of the oracle (no random actions) in
the evaluation's mazes (seeds 12345 + i, i < N) for ``--reference-steps`` steps: the scale that
trained policies sit on.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from rmdt.envs.memory_maze.env import MemoryMazeEnv
from rmdt.envs.registry import ENVS


def env_rate(steps: int, choose) -> tuple[float, float, float]:
    """(build + first reset seconds, steps/s, seconds per ``choose`` call) in one maze."""
    env = MemoryMazeEnv(9, steps, global_observables=True)
    start = time.perf_counter()
    _, info = env.reset(seed=0)
    built = time.perf_counter() - start
    choosing = 0.0
    start = time.perf_counter()
    for _ in range(steps):
        t = time.perf_counter()
        action = choose(info)
        choosing += time.perf_counter() - t
        _, _, _, _, info = env.step(action)
    rate = steps / (time.perf_counter() - start)
    env.close()
    return built, rate, choosing / steps


def reference_returns(choose, episodes: int, steps: int, seed: int = 12345) -> list[float]:
    """Total reward of ``choose(info)`` in mazes seeded ``seed + i``, as the evaluation seeds them."""
    env, returns = MemoryMazeEnv(9, steps, global_observables=True), []
    for i in range(episodes):
        _, info = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, info = env.step(choose(info))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    env.close()
    return returns


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200, help="env steps timed per measurement")
    parser.add_argument("--envs", type=int, default=4, help="mazes evaluated at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--reference", type=int, default=0, help="mazes for the random and oracle returns")
    parser.add_argument("--reference-steps", type=int, default=90, help="episode steps of those")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    built, rate, _ = env_rate(args.steps, lambda info: int(rng.integers(6)))
    print(f"env     {rate:6.1f} steps/s  (random actions, 64x64; build + seeded reset {built:.1f} s)")
    oracle = ENVS.recipe("memory_maze").oracle_action
    _, rate, plan = env_rate(args.steps, oracle)
    print(f"oracle  {rate:6.1f} steps/s  (BFS planning {plan * 1e6:.0f} us per step)")

    from rmdt.config import EvaluationConfig, load_config
    from rmdt.envs.memory_maze.evaluator import ENVS_AT_ONCE, evaluate
    from rmdt.models import RMDTConfig, RMDTModel

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "memory_maze" / "rmdt.yaml")
    m = config.model
    policy = RMDTModel(RMDTConfig(obs_shape=[64, 64, 3], num_actions=6, context_len=config.data.context_len,
                                  obs_encoder=m.obs_encoder, memory_tokens=m.memory_tokens, d_model=m.d_model,
                                  n_layers=m.n_layers, n_heads=m.n_heads)).eval()
    acting = [0.0]
    act = policy.act

    def timed_act(*a, **k):
        t = time.perf_counter()
        out = act(*a, **k)
        acting[0] += time.perf_counter() - t
        return out

    policy.act = timed_act
    steps = args.steps // args.envs
    evaluation = EvaluationConfig(env="memory_maze", episodes=args.envs, seed=0, target_return=4.0,
                                  env_args={"maze_size": 9, "max_steps": steps})
    start = time.perf_counter()
    (row,) = evaluate(policy, evaluation, evaluation.env_args, 4.0, progress=False)
    seconds = time.perf_counter() - start
    print(f"eval    {row['env_steps_per_second']:6.1f} steps/s  ({args.envs} mazes x {steps} steps, "
          f"{min(args.envs, ENVS_AT_ONCE)} at once, builds included; policy {acting[0] / seconds:.0%} of the time, "
          f"{acting[0] / steps * 1e3:.1f} ms per batched act)")
    if args.reference:
        from rmdt.evaluation.rollout import mean_interval

        for name, choose in (("random", lambda info: int(rng.integers(6))), ("oracle", oracle)):
            returns = reference_returns(choose, args.reference, args.reference_steps)
            low, high = mean_interval(returns)
            print(f"{name:7} return {np.mean(returns):.2f}  [{low:.2f}, {high:.2f}]  "
                  f"({args.reference} mazes x {args.reference_steps} steps, seeds 12345+)")


if __name__ == "__main__":
    main()
