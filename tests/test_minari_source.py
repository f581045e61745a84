import shutil

import numpy as np
import pytest

from rmdt.data import DataError, load_trajectories
from rmdt.data.minari_source import dataset_path, load_minari, write_minari


def test_tmaze_dataset_round_trips_through_minari(tiny_tmaze, tmaze_recipe):
    root, name, args = tiny_tmaze
    loaded = load_minari(name, root)
    buffers = tmaze_recipe.oracle_buffers(**args)
    assert loaded.num_episodes == args["episodes"] and loaded.num_actions == 4
    for i, buffer in enumerate(buffers):
        obs, actions, rewards = loaded.episode(i)
        np.testing.assert_array_equal(obs, buffer.observations[:-1])  # final observation dropped
        np.testing.assert_array_equal(actions, buffer.actions)
        np.testing.assert_array_equal(rewards, buffer.rewards)
    # every oracle episode succeeds, lengths stay within the requested corridor range (+1 turn step)
    np.testing.assert_array_equal(loaded.episode_returns, 1.0)
    assert loaded.episode_lengths.min() >= 2 and loaded.episode_lengths.max() <= args["max_length"] + 1
    # loading by directory path gives the same data
    by_path = load_trajectories(dataset_path(name, root))
    np.testing.assert_array_equal(by_path.observations, loaded.observations)


def test_clue_is_independent_of_corridor_length(tmaze_recipe):
    """A policy must read the clue: nothing else in an episode (its length above all) may predict it."""
    buffers = tmaze_recipe.oracle_buffers(episodes=600, min_length=1, max_length=6, seed=0)
    clue = np.array([b.observations[0, 1] for b in buffers])
    length = np.array([len(b.actions) for b in buffers])
    assert abs(np.mean(clue > 0) - 0.5) < 0.07
    for value in np.unique(length):
        assert 0.25 < np.mean(clue[length == value] > 0) < 0.75, value


def test_build_is_deterministic_and_reused(tmp_path, tmaze_recipe):
    args = dict(episodes=15, min_length=2, max_length=6, seed=11)
    a = load_minari(tmaze_recipe.build(**args, root=tmp_path / "a"), tmp_path / "a")
    b = load_minari(tmaze_recipe.build(**args, root=tmp_path / "b"), tmp_path / "b")
    for field in ("observations", "actions", "rewards", "episode_starts"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    data_file = next((dataset_path(tmaze_recipe.dataset_id(**args), tmp_path / "a") / "data").glob("*.hdf5"))
    stamp = data_file.stat().st_mtime_ns
    tmaze_recipe.build(**args, root=tmp_path / "a")
    assert data_file.stat().st_mtime_ns == stamp  # reused, not rebuilt
    assert not list((tmp_path / "a" / "rmdt").glob(".staging-*"))  # no leftovers of the atomic write
    other = load_minari(tmaze_recipe.build(**{**args, "seed": 12}, root=tmp_path / "a"), tmp_path / "a")
    assert not np.array_equal(other.observations[:, 3], a.observations[:, 3])


def test_build_that_loses_a_race_keeps_the_winners_dataset(tmp_path, tmaze_recipe, monkeypatch):
    """Two seeds started together build the same id; the one that finishes second must not fail."""
    import minari
    args = dict(episodes=6, min_length=2, max_length=4, seed=3)
    winner = tmp_path / "winner"
    name = tmaze_recipe.build(**args, root=winner)
    create = minari.create_dataset_from_buffers

    def create_while_another_finishes(dataset_id, *a, **k):
        out = create(dataset_id, *a, **k)
        shutil.copytree(dataset_path(name, winner), dataset_path(name, tmp_path / "race"))
        return out

    monkeypatch.setattr(minari, "create_dataset_from_buffers", create_while_another_finishes)
    assert tmaze_recipe.build(**args, root=tmp_path / "race") == name
    np.testing.assert_array_equal(load_minari(name, tmp_path / "race").actions, load_minari(name, winner).actions)
    assert not list((tmp_path / "race" / "rmdt").glob(".staging-*"))


def test_missing_dataset_names_the_path(tmp_path):
    with pytest.raises(DataError, match="not found.*nope-v0"):
        load_minari("rmdt/nope-v0", tmp_path)


def test_corrupt_dataset_names_the_path(tiny_tmaze, tmp_path):
    import shutil
    root, name, _ = tiny_tmaze
    copy = tmp_path / "copy"
    shutil.copytree(dataset_path(name, root), copy)
    next((copy / "data").glob("*.hdf5")).write_bytes(b"not hdf5")
    with pytest.raises(DataError, match=str(copy)):
        load_minari(str(copy))


def test_bad_recipe_arguments(tmaze_recipe, tmp_path):
    with pytest.raises(ValueError, match="episodes"):
        tmaze_recipe.build(episodes=0, root=tmp_path)
    with pytest.raises(ValueError, match="min-length"):
        tmaze_recipe.build(episodes=3, min_length=5, max_length=2, root=tmp_path)


def test_pixel_observations_round_trip_losslessly(tmp_path):
    """Minari would store uint8 images of 32x32 or more as JPEG by default; write_minari keeps every pixel."""
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    from rmdt.data.minari_source import write_minari

    rng = np.random.default_rng(0)
    obs_space = gym.spaces.Box(0, 255, (32, 32, 3), np.uint8)
    buffers = []
    for i, steps in enumerate((5, 3)):
        buffers.append(EpisodeBuffer(
            id=i, observations=rng.integers(0, 256, (steps + 1, 32, 32, 3), dtype=np.uint8),
            actions=rng.integers(0, 4, steps), rewards=rng.random(steps),
            terminations=np.arange(1, steps + 1) == steps, truncations=np.zeros(steps, bool), infos={}))
    write_minari("pixels/noise-v0", buffers, root=tmp_path, observation_space=obs_space,
                 action_space=gym.spaces.Discrete(4))
    loaded = load_minari("pixels/noise-v0", tmp_path)
    assert loaded.observations.dtype == np.uint8
    for i, buffer in enumerate(buffers):
        np.testing.assert_array_equal(loaded.episode(i)[0], buffer.observations[:-1])


def dict_buffers(rng, lengths=(4, 3)):
    """Episodes of a PointMaze / Kitchen-like nested dict observation space, and that space."""
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    space = gym.spaces.Dict({
        "observation": gym.spaces.Box(-5, 5, (4,), np.float64),
        "desired_goal": gym.spaces.Dict({"kettle": gym.spaces.Box(-1, 1, (2,), np.float64),
                                         "light": gym.spaces.Box(-1, 1, (1,), np.float64)}),
        "achieved_goal": gym.spaces.Box(-1, 1, (2, 2), np.float64),
    })
    buffers = []
    for i, steps in enumerate(lengths):
        obs = {"observation": rng.normal(size=(steps + 1, 4)),
               "desired_goal": {"kettle": rng.normal(size=(steps + 1, 2)), "light": rng.normal(size=(steps + 1, 1))},
               "achieved_goal": rng.normal(size=(steps + 1, 2, 2))}
        buffers.append(EpisodeBuffer(id=i, observations=obs, actions=rng.uniform(-1, 1, (steps, 2)),
                                     rewards=rng.random(steps), terminations=np.arange(1, steps + 1) == steps,
                                     truncations=np.zeros(steps, bool), infos={}))
    return space, buffers


def test_dict_observations_load_flat_in_the_recorded_key_order(tmp_path):
    """Loader and evaluator flatten dict observations identically: the loader records the leaf order,
    and FlattenDictObservation (the evaluator's wrapper) turns the env's dicts into the same rows."""
    import gymnasium as gym

    from rmdt.data.observations import leaf
    from rmdt.envs.gymnasium.wrappers import FlattenDictObservation

    space, buffers = dict_buffers(np.random.default_rng(0))
    write_minari("dicts/maze-v0", buffers, root=tmp_path, observation_space=space,
                 action_space=gym.spaces.Box(-1, 1, (2,), np.float32))
    loaded = load_minari("dicts/maze-v0", tmp_path)
    # the space's order (gymnasium sorts a Dict's keys), nested leaves as dotted paths
    assert loaded.metadata["obs_keys"] == ["achieved_goal", "desired_goal.kettle", "desired_goal.light", "observation"]
    assert loaded.observations.shape == (7, 4 + 2 + 1 + 4) and loaded.observations.dtype == np.float32

    class DictEnv(gym.Env):
        observation_space, action_space = space, gym.spaces.Box(-1, 1, (2,), np.float32)

    wrapper = FlattenDictObservation(DictEnv(), loaded.metadata["obs_keys"])
    assert wrapper.observation_space.shape == (11,)
    for i, buffer in enumerate(buffers):
        obs = loaded.episode(i)[0]
        for t in range(len(obs)):
            step = {"observation": buffer.observations["observation"][t],
                    "desired_goal": {k: buffer.observations["desired_goal"][k][t] for k in ("kettle", "light")},
                    "achieved_goal": buffer.observations["achieved_goal"][t]}
            np.testing.assert_array_equal(wrapper.observation(step), obs[t])
            np.testing.assert_array_equal(obs[t, :4], leaf(step, "achieved_goal").reshape(-1).astype(np.float32))
            np.testing.assert_array_equal(obs[t, 4:6], step["desired_goal"]["kettle"].astype(np.float32))
    with pytest.raises(ValueError, match="not numeric entries.*desired_goal.kettle"):
        FlattenDictObservation(DictEnv(), ["observation", "goal"])


def test_datasets_found_in_minari_default_folder_after_the_env_variable(tmp_path, monkeypatch, tiny_tmaze):
    import shutil

    from rmdt.data.minari_source import datasets_root

    root, name, _ = tiny_tmaze
    home, custom = tmp_path / "home", tmp_path / "custom"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    assert datasets_root() == home / ".minari" / "datasets"  # where builds go without a root
    with pytest.raises(DataError, match=f"searched {home / '.minari' / 'datasets'}"):
        load_minari(name)
    shutil.copytree(dataset_path(name, root), home / ".minari" / "datasets" / name)
    assert load_minari(name).num_episodes == 40  # found in minari's default folder
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(custom))
    assert datasets_root() == custom  # builds go to $MINARI_DATASETS_PATH when set ...
    assert dataset_path(name) == home / ".minari" / "datasets" / name  # ... but reading still finds the default
    shutil.copytree(dataset_path(name, root), custom / name)
    assert dataset_path(name) == custom / name  # $MINARI_DATASETS_PATH first
    assert load_minari(name).num_episodes == 40
    with pytest.raises(DataError, match="not found"):
        load_minari(name, root=tmp_path / "elsewhere")  # an explicit root is the only place looked in


KILLED_BUILD = """
import os, sys
import minari
from rmdt.data.minari_source import write_minari
from rmdt.envs.registry import ENVS

def killed(dataset_id, buffers, **kwargs):
    os.makedirs(os.path.join(os.environ["MINARI_DATASETS_PATH"], dataset_id, "data"))
    os._exit(9)  # the build dies mid-write, as under SIGKILL: no cleanup runs

minari.create_dataset_from_buffers = killed
write_minari("rmdt/killed-v0", ENVS.recipe("tmaze").oracle_buffers(3, 1, 2, 0), root=sys.argv[1])
"""


@pytest.mark.slow
def test_the_next_build_sweeps_staging_folders_of_killed_builds_but_not_of_live_ones(tmp_path, tmaze_recipe):
    import os
    import subprocess
    import sys
    import time

    out = subprocess.run([sys.executable, "-c", KILLED_BUILD, str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 9, out.stderr
    left = list((tmp_path / "rmdt").glob(".staging-*"))
    assert len(left) == 1 and (left[0] / "rmdt" / "killed-v0" / "data").is_dir()  # what a killed build leaves
    live = tmp_path / "rmdt" / f".staging-{os.uname().nodename}-{os.getpid()}-abc"  # a build running now
    old = tmp_path / "rmdt" / ".staging-q1w2e3"  # named before names carried the owner, untouched for 2 days
    other_host = tmp_path / "rmdt" / ".staging-elsewhere-1-xyz"  # another machine's build, active now
    for folder in (live, old, other_host):
        folder.mkdir()
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    tmaze_recipe.build(episodes=3, min_length=1, max_length=2, seed=0, root=tmp_path)
    assert sorted(p.name for p in (tmp_path / "rmdt").glob(".staging-*")) == sorted([live.name, other_host.name])


@pytest.mark.slow
def test_a_frame_store_writer_sweeps_partial_stores_of_killed_builds(tmp_path):
    import subprocess
    import sys

    from rmdt.data.frame_store import FrameStoreWriter

    killed = ("import os, sys, numpy as np\nfrom rmdt.data.frame_store import FrameStoreWriter\n"
              "w = FrameStoreWriter(sys.argv[1], (2, 2), num_actions=2)\n"
              "w.add_episode([0, 1], [0.0, 1.0], np.ones((2, 2, 2), np.uint8))\nos._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", killed, str(tmp_path / "a")], timeout=60).returncode == 9
    assert len(list(tmp_path.glob(".a.partial-*"))) == 1
    with FrameStoreWriter(tmp_path / "b", (2, 2), num_actions=2) as writer:
        writer.add_episode([1], [0.0], np.zeros((1, 2, 2), np.uint8))
        writer.finish()
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
