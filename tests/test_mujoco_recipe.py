"""The MuJoCo recipe on a tiny run: a stable-baselines3 agent's play written in D4RL's layout, read back."""
import h5py
import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("mujoco")

from rmdt.data import load_trajectories  # noqa: E402
from rmdt.envs.d4rl_mujoco import recipe  # noqa: E402
from rmdt.envs.gymnasium.evaluator import settings_from_data  # noqa: E402
from rmdt.evaluation.scores import D4RL_REFERENCES  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mujoco")
    medium = recipe.build("hopper", "ppo", agent_steps=128, medium_steps=150, seed=3, root=root, progress=False)
    replay = recipe.build("hopper", "ppo", agent_steps=128, medium_steps=150, seed=3, kind="medium-replay",
                          root=root, progress=False)
    return root, medium, replay


def arrays(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                                      "next_observations")}, {k: f[f"metadata/{k}"][()] for k in f["metadata"]}


def test_both_files_hold_d4rl_arrays_of_one_length(files):
    _, medium, replay = files
    for path, rows in ((medium, None), (replay, 128)):
        data, meta = arrays(path)
        lengths = {len(v) for v in data.values()}
        assert len(lengths) == 1, lengths
        if rows:
            assert lengths == {rows}  # every training step, no more
        assert data["observations"].shape[1:] == (11,) and data["actions"].shape[1:] == (3,)
        assert np.abs(data["actions"]).max() <= 1.0  # as executed: clipped to Hopper's action space
        assert not (data["terminals"] & data["timeouts"]).any()
        assert meta["env_id"].decode() == "Hopper-v5"
        assert (meta["ref_min_score"], meta["ref_max_score"]) == D4RL_REFERENCES["hopper"]


def test_steps_chain_within_episodes_and_medium_play_ends_whole_episodes(files):
    _, medium, replay = files
    for path in (medium, replay):
        data, _ = arrays(path)
        ends = data["terminals"] | data["timeouts"]
        inside = ~ends[:-1]
        np.testing.assert_array_equal(data["next_observations"][:-1][inside], data["observations"][1:][inside])
    data, meta = arrays(medium)
    assert len(data["rewards"]) >= 150 and (data["terminals"] | data["timeouts"])[-1]
    starts = np.flatnonzero(np.concatenate([[True], (data["terminals"] | data["timeouts"])[:-1]]))
    returns = np.add.reduceat(data["rewards"].astype(np.float64), starts)
    assert meta["mean_return"] == pytest.approx(returns.mean(), rel=1e-5)


def test_the_loader_finds_the_environment_and_the_references(files):
    _, medium, _ = files
    data = load_trajectories(medium)
    assert data.num_steps == len(arrays(medium)[0]["rewards"])
    filled = settings_from_data({}, data)
    assert filled["id"] == "Hopper-v5"
    assert (filled["ref_min_score"], filled["ref_max_score"]) == D4RL_REFERENCES["hopper"]


def test_a_built_dataset_is_reused(files, monkeypatch):
    root, medium, _ = files
    monkeypatch.setattr(recipe, "train_agent", lambda *a, **k: pytest.fail("trained again"))
    assert recipe.build("hopper", "ppo", agent_steps=128, medium_steps=150, seed=3, root=root) == medium


@pytest.mark.parametrize("kwargs, message", [(dict(env="ant"), "env must be one of"),
                                             (dict(agent="td3"), "agent must be one of"),
                                             (dict(kind="expert"), "kind must be one of"),
                                             (dict(agent_steps=0), "agent_steps must be a positive integer")])
def test_bad_arguments_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        recipe.build(root=tmp_path, **kwargs)
