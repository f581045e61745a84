"""``act`` stepped on dataset observations, no environment: the policy's own cost per rollout step,
which the benches time and count (bench/gpu_check.py, bench/perf/op_counts.py)."""
from __future__ import annotations

import time

import numpy as np
import torch


class DatasetActing:
    """``envs`` environments fed four fixed batches of the dataset's observations in turn, the
    greedy action of each step as the next step's last action, zero rewards and returns-to-go."""

    def __init__(self, policy, trajectories, envs: int, device=None, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.policy, self.envs, self.device = policy, envs, device
        self.obs = [torch.as_tensor(trajectories.observations[rng.integers(trajectories.num_steps, size=envs)])
                    .to(device) for _ in range(4)]
        self.action = torch.zeros(envs, dtype=torch.long, device=device) if policy.discrete else \
            torch.zeros(envs, policy.config.act_dim, device=device)
        self.zeros = torch.zeros(envs, device=device)

    @torch.no_grad()
    def run(self, steps: int, warmup: int = 0) -> float:
        """Seconds of ``steps`` steps after ``warmup`` steps of the same episodes (from a fresh state;
        CUDA work waited for), in eval mode; the policy is back in train mode afterwards."""
        cuda = torch.device(self.device).type == "cuda" if self.device is not None else False
        self.policy.eval()
        state, action = self.policy.initial_state(self.envs, self.device), self.action
        for s in range(warmup + steps):
            if s == warmup:
                if cuda:
                    torch.cuda.synchronize(self.device)
                start = time.perf_counter()
            output, state = self.policy.act(state, self.obs[s % 4], action, self.zeros, self.zeros)
            action = self.policy.greedy_action(output)
        if cuda:
            torch.cuda.synchronize(self.device)
        self.policy.train()
        return time.perf_counter() - start
