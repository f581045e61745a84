"""Atari: env preprocessing and no-auto-reset contract, collection into a store, evaluation, end to end."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rmdt.config import load_config
from rmdt.data import load_trajectories
from rmdt.envs.atari.env import AtariEnvs, num_actions, rom_id
from rmdt.envs.atari.evaluator import plot
from rmdt.envs.registry import ENVS
from rmdt.evaluation import evaluate_checkpoint, evaluate_policy
from rmdt.training import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "atari"
SETTINGS = dict(env="atari", game="Breakout", target_return=None, episodes=2, seed=5, sticky_actions=0.0,
                max_steps=25)


@pytest.fixture(scope="module")
def recipe():
    return ENVS.recipe("atari")


def test_game_names_map_to_ale_roms_and_unknown_games_are_named():
    assert [rom_id(g) for g in ("Breakout", "MsPacman", "ALE/Pong-v5", "QbertNoFrameskip-v4", "space_invaders")] == \
        ["breakout", "ms_pacman", "pong", "qbert", "space_invaders"]
    assert num_actions("Breakout") == 4 and num_actions("Seaquest") == 18
    with pytest.raises(ValueError, match=r"unknown Atari game 'Breakot'.*did you mean breakout"):
        AtariEnvs("Breakot", 2)


@pytest.mark.slow
def test_observations_are_gymnasiums_atari_preprocessing_with_a_zero_padded_stack():
    import ale_py
    import gymnasium as gym
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gym.register_envs(ale_py)
    reference = FrameStackObservation(AtariPreprocessing(
        gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0), noop_max=0), 4, padding_type="zero")
    env = AtariEnvs("Breakout", 1, noop_max=0)
    expected, _ = reference.reset(seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (1, 4, 84, 84) and obs.dtype == np.uint8
    assert not obs[0, :3].any() and obs[0, 3].any()  # [0, 0, 0, frame_0], as DQN-Replay states start
    rng = np.random.default_rng(0)
    for _ in range(60):
        np.testing.assert_array_equal(obs[0], expected)
        action = int(rng.integers(4))
        expected, reward, *_ = reference.step(action)
        previous = obs
        obs, got, *_ = env.step(np.array([action]))
        assert got[0] == reward
        np.testing.assert_array_equal(obs[0, :3], previous[0, 1:])  # a stack is the last 4 frames
    env.close()


@pytest.mark.slow
def test_finished_games_stay_done_frozen_and_pay_nothing():
    env = AtariEnvs("Breakout", 2, max_steps=5)
    env.reset(seed=0)
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(np.array([1, 3]))
    assert truncated.all() and env.done.all()
    frozen = obs.copy()
    for _ in range(3):
        after, reward, terminated, truncated, _ = env.step(np.array([1, 2]))
        np.testing.assert_array_equal(after, frozen)
        assert not reward.any() and not terminated.any() and not truncated.any()
    with pytest.raises(ValueError, match=r"actions must lie in \[0, 4\)"):
        env.step(np.array([0, 4]))
    env.close()


@pytest.mark.slow
def test_a_masked_reset_restarts_one_game_with_its_seed_and_the_next_step_is_real():
    """What rollout's episode queue needs: one finished game restarted with its own seed, as if alone."""
    env, alone = AtariEnvs("Breakout", 2, max_steps=6), AtariEnvs("Breakout", 1, max_steps=6)
    env.reset(seed=[3, 4])
    for _ in range(6):
        env.step(np.array([1, 1]))
    assert env.done.all()
    obs, _ = env.reset(seed=[10, None], options={"reset_mask": np.array([True, False])})
    expected, _ = alone.reset(seed=[10])
    assert env.done.tolist() == [False, True]
    np.testing.assert_array_equal(obs[0], expected[0])
    for t in range(6):
        obs, reward, terminated, truncated, _ = env.step(np.array([t % 4, 0]))
        want = alone.step(np.array([t % 4]))
        np.testing.assert_array_equal(obs[0], want[0][0])
        assert (reward[0], terminated[0], truncated[0]) == (want[1][0], want[2][0], want[3][0])
    assert env.done.all()
    env.close(), alone.close()


@pytest.mark.slow
def test_recorded_episodes_are_the_states_the_game_showed(recipe, tmp_path):
    path = recipe.build(game="Breakout", episodes=3, num_envs=2, max_steps=25, seed=7, root=tmp_path, progress=False)
    assert recipe.build(game="Breakout", episodes=3, num_envs=2, max_steps=25, seed=7, root=tmp_path,
                        progress=False) == path  # built once, then reused
    t = load_trajectories(path)
    again = load_trajectories(recipe.build(game="Breakout", episodes=3, num_envs=2, max_steps=25, seed=7,
                                           root=tmp_path / "again", progress=False))
    np.testing.assert_array_equal(again.actions, t.actions)  # the same arguments give the same store
    np.testing.assert_array_equal(again.observations.frames, t.observations.frames)
    assert t.num_episodes == 3 and t.episode_lengths.max() <= 25 and t.num_actions == 4
    assert t.metadata["policy"] == "random" and t.metadata["game"] == "breakout"
    # Episode 1 is game 1 of the first round (seed 7 + 1): replaying its actions shows the same states.
    obs, actions, rewards = t.episode(1)
    env = AtariEnvs("Breakout", 1, max_steps=25)
    shown, _ = env.reset(seed=8)
    for step, action in enumerate(actions):
        np.testing.assert_array_equal(obs[step], shown[0])
        shown, reward, *_ = env.step(np.array([action]))
        assert reward[0] == rewards[step]
    assert env.done.all()  # the recording stopped where the game did
    env.close()


class Uniform(torch.nn.Module):
    """Random actions through the policy interface, recording the return-to-go it is given."""

    discrete = True

    def __init__(self, actions=4):
        super().__init__()
        self.config = type("C", (), {"return_scale": 1.0, "num_actions": actions})()
        self.seen = []

    def initial_state(self, batch_size, device=None):
        return None

    def act(self, state, obs, last_action, last_reward, return_to_go):
        self.seen.append(return_to_go.clone())
        return torch.rand(obs.shape[0], self.config.num_actions), state

    def greedy_action(self, output):
        return output.argmax(-1)


@pytest.mark.slow
def test_evaluation_reports_mean_return_interval_and_speed(tmp_path):
    policy = Uniform()
    report = evaluate_policy(policy, SETTINGS, progress=False)
    (row,) = report["results"]
    assert row["game"] == "breakout" and row["target_return"] == 90.0  # the DT paper's Breakout target
    assert float(policy.seen[0][0]) == 90.0
    assert len(row["returns"]) == 2 and row["mean_return"] == pytest.approx(np.mean(row["returns"]))
    assert row["ci95"][0] <= row["mean_return"] <= row["ci95"][1]
    assert row["mean_length"] <= 25 and row["episodes_per_second"] > 0 and row["env_steps_per_second"] > 0
    plot(report["results"], tmp_path / "atari.png", title="uniform")
    assert (tmp_path / "atari.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="trained with 6 actions but breakout has 4"):
        evaluate_policy(Uniform(actions=6), {**SETTINGS, "episodes": 1}, progress=False)


@pytest.mark.slow
def test_collect_train_and_evaluate_end_to_end(recipe, tmp_path):
    config = load_config(CONFIGS / "tiny.yaml", [f"data.root={tmp_path / 'stores'}"])
    run = train(config, run_dir=tmp_path / "run").run_dir
    out = evaluate_checkpoint(run)
    report = json.loads(out.read_text())
    (row,) = report["results"]
    assert report["env"] == "atari" and row["game"] == "breakout" and row["episodes"] == 2
    assert row["mean_length"] <= 30 and out.with_suffix(".png").is_file()
    # The trained checkpoint records new data, epsilon-greedy.
    data = load_trajectories(recipe.build(episodes=1, num_envs=1, max_steps=20, policy=str(run), epsilon=0.5,
                                          root=tmp_path / "stores", progress=False))
    assert data.metadata["target_return"] == 90.0 and data.metadata["epsilon"] == 0.5 and data.num_episodes == 1


@pytest.mark.slow
def test_a_recurrent_baseline_trains_on_the_same_store_and_plays(recipe, tmp_path):
    """FFM with the Nature-CNN, on tapes of the recorded games, through the same trainer and evaluator."""
    config = load_config(CONFIGS / "tiny.yaml", [f"data.root={tmp_path / 'stores'}", "model.kind=ffm",
                                                 "data.batching=tape", "data.tape_len=60", "model.memory_size=4",
                                                 "model.context_size=2"])
    run = train(config, run_dir=tmp_path / "run").run_dir
    (row,) = json.loads(evaluate_checkpoint(run).read_text())["results"]
    assert row["game"] == "breakout" and row["episodes"] == 2 and row["mean_length"] <= 30


@pytest.mark.parametrize("name", ["breakout_rmdt.yaml", "breakout_dt.yaml"])
def test_the_rate_configs_load(name):
    config = load_config(CONFIGS / name)
    m, d = config.model, config.data
    assert (d.context_len, d.num_segments, m.n_layers, m.n_heads, m.d_model, m.obs_encoder) == \
        (30, 3, 6, 8, 128, "nature_cnn")
    assert m.memory_tokens == (15 if "rmdt" in name else 0) and config.evaluation.env == "atari"
