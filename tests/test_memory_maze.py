"""Memory Maze: the env's contract, the oracle against random play, the dataset round trip and a
tiny train -> evaluate run. Env steps cost ~0.1 s and a seeded maze ~5 s here, so episodes are short."""
import json
from pathlib import Path

import numpy as np
import pytest

from rmdt.config import load_config
from rmdt.data.minari_source import load_minari
from rmdt.envs.memory_maze.env import MemoryMazeEnv, MemoryMazeVectorEnv
from rmdt.envs.registry import ENVS

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "memory_maze" / "tiny.yaml"


@pytest.fixture(scope="module")
def recipe():
    return ENVS.recipe("memory_maze")


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory, recipe):
    """The tiny config's dataset, built from a chunk rolled out here (as if a build had been
    interrupted after it), plus the same mazes played at random: (root, id, oracle, random)."""
    config = load_config(TINY)
    args = dict(config.data.recipe_args)
    root = tmp_path_factory.mktemp("minari")
    job = (0, args["episodes"], args["episode_steps"], args["maze_size"], args["noise"], args["seed"])
    oracle = recipe.run_chunk(job)
    random = recipe.run_chunk(job[:4] + (1.0,) + job[5:])  # noise 1: every action uniformly random
    name = recipe.dataset_id(**args)
    partial = recipe.partial_dir(name, root)
    partial.mkdir(parents=True)
    np.savez(partial / "chunk_00000.npz", **oracle)
    return root, name, oracle, random


@pytest.mark.slow
def test_oracle_collects_far_more_reward_than_random_play_in_the_same_mazes(tiny_dataset):
    _, _, oracle, random = tiny_dataset
    np.testing.assert_array_equal(oracle["observations"][:, 0], random["observations"][:, 0])  # same mazes
    assert oracle["rewards"].sum() >= 2  # a target every ~30-40 steps (turning is slow)
    assert random["rewards"].sum() <= oracle["rewards"].sum() - 2


@pytest.mark.slow
def test_build_resumes_saved_chunks_and_the_dataset_round_trips(tiny_dataset, recipe, monkeypatch):
    root, name, oracle, _ = tiny_dataset
    monkeypatch.setattr(recipe, "run_chunk", lambda job: pytest.fail(f"chunk {job[0]} was rolled out again"))
    args = dict(load_config(TINY).data.recipe_args)
    assert recipe.build(**args, root=root, progress=False) == name
    assert not recipe.partial_dir(name, root).exists()  # chunk files go once the dataset is written
    data = load_minari(name, root)
    episodes, steps = oracle["actions"].shape
    assert data.observations.dtype == np.uint8 and data.observations.shape == (episodes * steps, 64, 64, 3)
    np.testing.assert_array_equal(data.observations, oracle["observations"][:, :-1].reshape(-1, 64, 64, 3))
    np.testing.assert_array_equal(data.actions, oracle["actions"].reshape(-1))
    np.testing.assert_array_equal(data.rewards, oracle["rewards"].reshape(-1))
    assert list(data.episode_starts) == [i * steps for i in range(episodes + 1)]
    assert recipe.build(**args, root=root, progress=False) == name  # found on disk, not rebuilt


def test_dataset_ids_are_valid_minari_ids_and_differ_per_argument(recipe):
    from minari.dataset.minari_dataset import parse_dataset_id

    args = dict(episodes=80, episode_steps=90, maze_size=9, noise=0.2, seed=0, chunk=10)
    ids = {recipe.dataset_id(**args)}
    for key, value in dict(episodes=81, episode_steps=91, maze_size=11, noise=0.05, seed=1, chunk=5).items():
        ids.add(recipe.dataset_id(**{**args, key: value}))
    assert len(ids) == 7
    for name in ids:
        parse_dataset_id(name)  # raises on ids minari cannot write (a dot in "0.2" did)


@pytest.mark.slow
def test_vector_env_truncates_and_does_not_auto_reset():
    env = MemoryMazeVectorEnv(1, maze_size=9, max_episode_steps=2)
    try:
        obs, _ = env.reset(seed=7)
        assert obs.shape == (1, 64, 64, 3) and obs.dtype == np.uint8
        truncations = [env.step(np.array([1]))[3][0] for _ in range(2)]
        assert truncations == [False, True]
        frozen, reward, terminated, truncated, _ = env.step(np.array([1]))
        assert reward[0] == 0 and not terminated[0] and not truncated[0] and env.done[0]
        np.testing.assert_array_equal(frozen, env.step(np.array([2]))[0])
        again, _ = env.reset(seed=[7], options={"reset_mask": np.array([True])})  # the queue's per-maze restart
        np.testing.assert_array_equal(again, obs)
        assert not env.done[0]
    finally:
        env.close()


def test_clear_errors():
    with pytest.raises(ValueError, match="maze_size"):
        MemoryMazeEnv(maze_size=10)
    with pytest.raises(ValueError, match="max_episode_steps"):
        MemoryMazeEnv(maze_size=9, max_episode_steps=1001)
    with pytest.raises(RuntimeError, match="reset"):
        MemoryMazeEnv().step(1)


@pytest.mark.slow
def test_tiny_train_then_evaluate_with_a_gif(tiny_dataset, tmp_path):
    from rmdt.evaluation import evaluate_checkpoint
    from rmdt.training import train

    root, name, _, _ = tiny_dataset
    config = load_config(TINY, [f"data.root={root}"])
    run = train(config, run_dir=tmp_path / "run").run_dir
    gif = tmp_path / "episode.gif"
    out = evaluate_checkpoint(run, {"gif": str(gif)}, tmp_path / "eval.json")
    report = json.loads(out.read_text())
    assert report["env"] == "memory_maze"
    (row,) = report["results"]
    steps = config.evaluation.env_args.max_steps
    assert row["episodes"] == len(row["returns"]) == config.evaluation.episodes
    assert row["ci95"][0] <= row["mean_return"] <= row["ci95"][1]
    assert 0 <= row["mean_return"] <= steps
    assert gif.read_bytes()[:6] == b"GIF89a"
    from PIL import Image
    assert Image.open(gif).n_frames == steps + 1  # the first frame and one per step
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
