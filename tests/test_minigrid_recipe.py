"""MiniGrid-Memory: the oracle looks at the cue and beats random play, never reads what is drawn after
its step; datasets round-trip through Minari; the wrapper and the symbolic grid encoder agree on the layout."""
import copy
import json

import numpy as np
import pytest
import torch

from rmdt.data.minari_source import load_minari, metadata_file
from rmdt.envs.minigrid import recipe
from rmdt.models.embeddings import build_obs_encoder

SMALL = "MiniGrid-MemoryS9-v0"


@pytest.mark.parametrize("env_id", [SMALL, "MiniGrid-MemoryS13Random-v0"])
@pytest.mark.slow
def test_oracle_sees_the_cue_and_beats_random_play(env_id):
    env = recipe.make_env(env_id)
    for seed in range(6):
        env.reset(seed=seed)
        oracle, done, total = recipe.MemoryOracle(), False, 0.0
        while not done:
            _, reward, terminated, truncated, _ = env.step(oracle(env.unwrapped))
            total, done = total + reward, terminated or truncated
        assert oracle.seen and total > 0.5, (seed, total)
    randomly = [e[2].sum() for e in recipe.play(env_id, 6, 1.0, seed=0)]
    assert np.mean(randomly) < 0.5


def test_oracle_never_peeks_at_the_future():
    """At every step its action equals its action on a copy whose later randomness was redrawn."""
    rng = np.random.default_rng(0)
    env = recipe.make_env("MiniGrid-MemoryS13Random-v0")
    for i in range(4):
        env.reset(seed=i)
        oracle, done = recipe.MemoryOracle(), False
        while not done:
            twin_env, twin_oracle = copy.deepcopy(env.unwrapped), copy.deepcopy(oracle)
            twin_env.np_random = np.random.default_rng(rng.integers(2**32))
            action = oracle(env.unwrapped)
            assert twin_oracle(twin_env) == action
            step = rng.integers(7) if rng.random() < 0.3 else action
            _, _, terminated, truncated, _ = env.step(step)
            done = terminated or truncated


@pytest.mark.slow
def test_dataset_round_trips_with_references(tmp_path, monkeypatch):
    from rmdt.envs import oracle_play

    monkeypatch.setattr(oracle_play, "REFERENCE_EPISODES", 8)
    name = recipe.build(SMALL, episodes=5, random_share=0.2, seed=2, root=tmp_path)
    assert name == "rmdt/minigrid-MemoryS9-oracle-e5-r0p2-s2-v0"
    loaded = load_minari(name, tmp_path)
    assert loaded.num_actions == 7 and loaded.observations.dtype == np.uint8
    assert loaded.observations.shape[1:] == (148,)
    for i, (obs, actions, rewards, _, _) in enumerate(recipe.play(SMALL, 5, 0.2, 2)):
        got_obs, got_actions, got_rewards = loaded.episode(i)
        np.testing.assert_array_equal(got_obs, obs[:-1])
        np.testing.assert_array_equal(got_actions, actions)
        np.testing.assert_allclose(got_rewards, rewards, rtol=1e-6)
    meta = json.loads(metadata_file(name, tmp_path).read_text())
    assert meta["ref_max_score"] > 0.9 > meta["ref_min_score"]
    stamp = metadata_file(name, tmp_path).stat().st_mtime_ns
    recipe.build(SMALL, episodes=5, random_share=0.2, seed=2, root=tmp_path)
    assert metadata_file(name, tmp_path).stat().st_mtime_ns == stamp  # reused


def test_wrapper_layout_is_view_then_direction():
    env = recipe.make_env(SMALL)
    obs, _ = env.reset(seed=0)
    raw = env.unwrapped.gen_obs()
    np.testing.assert_array_equal(obs[:-1].reshape(7, 7, 3), raw["image"])
    assert obs[-1] == raw["direction"] and obs.dtype == np.uint8


def test_symbolic_grid_encoder_shapes_gradients_and_what_it_reads():
    env = recipe.make_env(SMALL)
    rows = []
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        rows.append(obs)
        for action in (0, 2, 1):
            rows.append(env.step(action)[0])
    obs = torch.as_tensor(np.stack(rows)).reshape(2, 6, 148).float()  # (B, T, obs) as models feed it
    torch.manual_seed(0)
    encoder = build_obs_encoder("symbolic_grid", (148,), 32)
    out = encoder(obs)
    assert out.shape == (2, 6, 32)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())
    with torch.no_grad():
        turned = obs.clone()
        turned[..., -1] = (turned[..., -1] + 1) % 4
        assert not torch.allclose(encoder(turned), out)  # reads the direction
        moved = obs.clone()
        moved[0, 0, :3] = torch.tensor([6.0, 1.0, 0.0])  # a green ball in the view's corner
        changed = encoder(moved)
        assert not torch.allclose(changed[0, 0], out[0, 0]) and torch.allclose(changed[1], out[1])
    with pytest.raises(ValueError, match="symbolic_grid needs"):
        build_obs_encoder("symbolic_grid", (5,), 32)


def test_bad_env_id_is_named(tmp_path):
    with pytest.raises(ValueError, match="MiniGrid-Memory id"):
        recipe.build("MiniGrid-Empty-5x5-v0", episodes=2, root=tmp_path)
