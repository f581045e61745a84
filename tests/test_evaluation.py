from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rmdt.envs.tmaze.evaluator import length_seed, plot, scalars
from rmdt.evaluation import evaluate_policy
from rmdt.evaluation.rollout import mean_interval, wilson_interval
from rmdt.models.policy import Policy

SETTINGS = dict(env="tmaze", target_return=1.0, episodes=32, seed=3, env_args={"corridor_lengths": [1, 5, 40]})


class ScriptedPolicy(torch.nn.Module, Policy):
    """Remembers the clue seen at t=0 (or not) and turns at the junction; records its inputs."""

    discrete = True

    def __init__(self, remember: bool, return_scale: float = 1.0):
        super().__init__()
        self.remember = remember
        self.config = SimpleNamespace(return_scale=return_scale)
        self.seen_returns = []

    def initial_state(self, batch_size, device=None):
        return torch.zeros(batch_size)

    def act(self, state, obs, last_action, last_reward, return_to_go):
        self.seen_returns.append(return_to_go.clone())
        clue = torch.where(state == 0, obs[:, 1], state) if self.remember else torch.ones_like(state)
        turn = torch.where(clue > 0, 1, 3)
        action = torch.where(obs[:, 2] == 1, turn, 0)
        return torch.nn.functional.one_hot(action, 4).float(), clue

    def reset(self, state, done):
        return torch.where(torch.as_tensor(done), 0.0, state)


def test_a_policy_that_remembers_always_succeeds():
    report = evaluate_policy(ScriptedPolicy(remember=True), SETTINGS, progress=False)
    assert report["env"] == "tmaze" and report["target_return"] == 1.0
    assert [r["corridor_length"] for r in report["results"]] == [1, 5, 40]
    assert all(r["success_rate"] == 1.0 and r["episodes"] == 32 for r in report["results"])


def test_a_policy_that_forgets_gets_chance():
    report = evaluate_policy(ScriptedPolicy(remember=False), {**SETTINGS, "episodes": 400}, progress=False)
    for row in report["results"]:
        assert 0.4 < row["success_rate"] < 0.6
        assert row["ci95"][0] < 0.5 < row["ci95"][1]


def test_return_conditioning_is_scaled_and_counts_down():
    policy = ScriptedPolicy(remember=True, return_scale=4.0)
    evaluate_policy(policy, {**SETTINGS, "target_return": 2.0}, {"corridor_lengths": [3]}, progress=False)
    seen = torch.stack(policy.seen_returns)
    assert torch.all(seen == 0.5)  # 2.0 / 4.0, and no reward arrives before the last step


def test_several_target_returns_give_rows_per_target_side_by_side(tmp_path):
    policy = ScriptedPolicy(remember=True, return_scale=2.0)
    report = evaluate_policy(policy, {**SETTINGS, "target_return": [1.0, 3.0], "episodes": 4}, progress=False)
    assert report["target_return"] == [1.0, 3.0]
    assert [(r["target_return"], r["corridor_length"]) for r in report["results"]] == \
        [(1.0, 1), (1.0, 5), (1.0, 40), (3.0, 1), (3.0, 5), (3.0, 40)]
    assert policy.seen_returns[0][0].item() == 0.5  # 1.0 / 2.0: the first target's rollouts come first
    assert {seen[0].item() for seen in policy.seen_returns} == {0.5, 1.5}  # and each target was conditioned on
    assert sorted(scalars(report["results"])) == sorted(f"success_L{n}_R{t}" for n in (1, 5, 40) for t in (1, 3))
    assert sorted(scalars(report["results"][:3])) == ["success_L1", "success_L40", "success_L5"]  # one target
    plot(report["results"], tmp_path / "targets.png")
    assert (tmp_path / "targets.png").read_bytes()[:4] == b"\x89PNG"


def test_periodic_evaluation_uses_its_own_lengths_and_episode_count():
    settings = {**SETTINGS, "periodic_episodes": 5, "env_args": {"corridor_lengths": [1, 5], "periodic_lengths": [7]}}
    report = evaluate_policy(ScriptedPolicy(remember=True), settings, progress=False, periodic=True)
    assert [(r["corridor_length"], r["episodes"]) for r in report["results"]] == [(7, 5)]
    report = evaluate_policy(ScriptedPolicy(remember=True), settings, progress=False)
    assert [(r["corridor_length"], r["episodes"]) for r in report["results"]] == [(1, 32), (5, 32)]


def test_fewer_environments_than_episodes_give_the_same_episodes():
    """The episode queue: 32 episodes over 8 environments are the 32 episodes run at once."""
    together = evaluate_policy(ScriptedPolicy(remember=False), SETTINGS, progress=False)
    queued = evaluate_policy(ScriptedPolicy(remember=False), {**SETTINGS, "num_envs": 8}, progress=False)
    assert [r["episodes"] for r in queued["results"]] == [32, 32, 32]
    assert [r["success_rate"] for r in queued["results"]] == [r["success_rate"] for r in together["results"]]
    sampled = evaluate_policy(ScriptedPolicy(remember=True), {**SETTINGS, "num_envs": 8, "sample_actions": True},
                              progress=False)
    assert all(r["episodes"] == 32 for r in sampled["results"])


def test_every_corridor_length_draws_its_own_clues():
    """The env seed differs per length (it was one seed for all, so every length saw the same clues)."""

    class FirstClues(ScriptedPolicy):
        def act(self, state, obs, last_action, last_reward, return_to_go):
            if not self.seen_returns:
                self.clues.append(obs[:, 1].tolist())
            return super().act(state, obs, last_action, last_reward, return_to_go)

        def initial_state(self, batch_size, device=None):
            self.seen_returns = []
            return super().initial_state(batch_size, device)

    policy = FirstClues(remember=True)
    policy.clues = []
    evaluate_policy(policy, {**SETTINGS, "episodes": 64}, {"corridor_lengths": [5, 6, 7]}, progress=False)
    assert len(policy.clues) == 3 and len({tuple(c) for c in policy.clues}) == 3
    assert len({length_seed(seed, n) for seed in range(4) for n in range(1, 100)}) == 4 * 99  # one per (seed, length)
    assert length_seed(3, 5) == 3746004709  # the same in every process and release: evaluations stay comparable


def test_wilson_interval():
    assert wilson_interval(0, 10)[0] == 0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4) and wilson_interval(10, 10)[1] == 1
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)


def test_plot_is_a_png(tmp_path):
    results = [{"corridor_length": n, "success_rate": r, "ci95": list(wilson_interval(int(r * 100), 100)),
                "episodes": 100} for n, r in [(9, 1.0), (90, 0.97), (900, 0.5)]]
    plot(results, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name != "plot.png"]  # no temp files left


def test_a_null_target_return_without_an_env_default_is_a_clear_error():
    with pytest.raises(ValueError, match="target_return is null"):
        evaluate_policy(ScriptedPolicy(remember=True), {**SETTINGS, "target_return": None}, progress=False)


def test_mean_interval():
    assert mean_interval([5.0]) == (5.0, 5.0)
    low, high = mean_interval(np.arange(100.0))
    assert low < 49.5 < high and high - low == pytest.approx(2 * 1.96 * np.arange(100.0).std() / 10, rel=0.1)
