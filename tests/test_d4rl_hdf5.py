import h5py
import numpy as np
import pytest

from rmdt.data import DataError, Trajectories, load_trajectories


def write(path, **arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)
        f.create_dataset("infos/qpos", data=np.zeros((len(arrays["rewards"]), 2)))
        f.create_dataset("metadata/algorithm", data="SAC")
    return path


def d4rl_arrays(rng, lengths, obs_dim=3, act_dim=2):
    total = sum(lengths)
    terminals = np.zeros(total, bool)
    timeouts = np.zeros(total, bool)
    ends = np.cumsum(lengths) - 1
    terminals[ends[0]] = True  # first episode terminates, the second times out, the last is cut
    timeouts[ends[1]] = True
    return dict(observations=rng.normal(size=(total, obs_dim)), actions=rng.uniform(-1, 1, (total, act_dim)),
                rewards=rng.normal(size=total), terminals=terminals, timeouts=timeouts,
                next_observations=rng.normal(size=(total, obs_dim)))


def test_loads_same_trajectories_as_written(tmp_path):
    rng = np.random.default_rng(0)
    lengths = [5, 7, 4]
    arrays = d4rl_arrays(rng, lengths)
    loaded = load_trajectories(write(tmp_path / "hopper.hdf5", **arrays))
    starts = np.concatenate([[0], np.cumsum(lengths)])
    expected = Trajectories(observations=arrays["observations"].astype(np.float32),
                            actions=arrays["actions"].astype(np.float32),
                            rewards=arrays["rewards"].astype(np.float32), episode_starts=starts)
    for field in ("observations", "actions", "rewards", "episode_starts"):
        a, b = getattr(loaded, field), getattr(expected, field)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert not loaded.discrete and loaded.num_episodes == 3


def test_terminals_only_and_discrete_actions(tmp_path):
    path = write(tmp_path / "old.h5", observations=np.zeros((6, 2)), actions=np.array([0, 1, 2, 0, 1, 2]),
                 rewards=np.ones(6), terminals=np.array([0, 1, 0, 0, 0, 1], bool))
    loaded = load_trajectories(path, num_actions=3)
    np.testing.assert_array_equal(loaded.episode_starts, [0, 2, 6])
    assert loaded.discrete and loaded.actions.dtype == np.int64


@pytest.mark.parametrize("problem, match", [
    ("missing_actions", "missing dataset.*actions"),
    ("length_mismatch", "'actions' has 9 rows but 'rewards' has 10"),
    ("nan_reward", "NaN"),
    ("empty", "no steps"),
    ("no_ends", "terminals' or 'timeouts"),
])
def test_bad_files_name_the_file_and_problem(tmp_path, problem, match):
    arrays = d4rl_arrays(np.random.default_rng(1), [4, 3, 3])
    if problem == "missing_actions":
        del arrays["actions"]
    elif problem == "length_mismatch":
        arrays["actions"] = arrays["actions"][:9]
    elif problem == "nan_reward":
        arrays["rewards"][4] = np.nan
    elif problem == "empty":
        arrays = {key: value[:0] for key, value in arrays.items()}
    elif problem == "no_ends":
        del arrays["terminals"], arrays["timeouts"]
    path = write(tmp_path / f"{problem}.hdf5", **arrays)
    with pytest.raises(DataError, match=match) as error:
        load_trajectories(path)
    assert str(path) in str(error.value)


def test_missing_or_corrupt_file(tmp_path):
    with pytest.raises(DataError, match="not found.*absent.hdf5"):
        load_trajectories(tmp_path / "absent.hdf5")
    (tmp_path / "junk.hdf5").write_bytes(b"junk")
    with pytest.raises(DataError, match="junk.hdf5.*not a readable HDF5"):
        load_trajectories(tmp_path / "junk.hdf5")


def test_one_dimensional_actions_stored_flat_load_as_columns(tmp_path):
    """D4RL files of one-action-dimension tasks may store actions as (T,); models need (T, 1)."""
    arrays = d4rl_arrays(np.random.default_rng(2), [3, 4, 2], act_dim=1)
    arrays["actions"] = arrays["actions"][:, 0]
    loaded = load_trajectories(write(tmp_path / "pendulum.hdf5", **arrays))
    assert loaded.actions.shape == (9, 1) and loaded.actions.dtype == np.float32
    np.testing.assert_array_equal(loaded.actions[:, 0], arrays["actions"].astype(np.float32))


@pytest.mark.parametrize("file_name, name", [("hopper_medium_replay-v2.hdf5", "hopper-medium-replay-v2"),
                                             ("walker2d-expert-v2.hdf5", "walker2d-expert-v2")])
def test_dataset_name_is_recorded_from_the_file_name(tmp_path, file_name, name):
    """D4RL's download names (underscores) and the dataset names (dashes) both give the dataset name."""
    loaded = load_trajectories(write(tmp_path / file_name, **d4rl_arrays(np.random.default_rng(3), [3, 3, 3])))
    assert loaded.metadata["dataset_name"] == name
