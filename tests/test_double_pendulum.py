"""The LQR double-pendulum recipe: Minari round trip with its metadata, determinism, the controller's
quality against random play; and the D4RL / Minari reference scores the gymnasium evaluator reports."""
import numpy as np
import pytest

from rmdt.data.minari_source import dataset_path, load_minari
from rmdt.envs.double_pendulum import recipe
from rmdt.envs.gymnasium.evaluator import settings_from_data
from rmdt.evaluation.scores import d4rl_name, d4rl_references, normalise

pytest.importorskip("mujoco")
TINY = dict(controller=1, noisy=2, random=3, max_noise=0.3, reference_episodes=1, seed=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("minari")
    return root, recipe.build(**TINY, root=root)


@pytest.mark.slow
def test_round_trips_through_minari_with_env_spec_and_reference_scores(tiny):
    root, name = tiny
    loaded = load_minari(name, root)
    episodes, ref_min, ref_max = recipe.collect(**TINY)  # the same arguments give the same episodes
    assert loaded.num_episodes == 6 and loaded.actions.shape[1:] == (1,) and not loaded.discrete
    for i, (obs, actions, rewards, *_) in enumerate(episodes):
        got = loaded.episode(i)
        np.testing.assert_array_equal(got[0], obs[:-1].astype(np.float32))
        np.testing.assert_array_equal(got[1], actions)
        np.testing.assert_array_equal(got[2], rewards.astype(np.float32))
    assert loaded.metadata["env"] == {"id": recipe.ENV_ID, "kwargs": {}, "max_episode_steps": 1000}
    assert loaded.metadata["ref_min_score"] == pytest.approx(ref_min)
    assert loaded.metadata["ref_max_score"] == pytest.approx(ref_max)
    # the controller balances to the time limit; random play falls within a few dozen steps
    assert ref_max > 9300 and ref_min < 150
    assert loaded.episode_lengths[0] == 1000 and loaded.episode_returns[0] > 9300
    assert loaded.episode_lengths[3:].max() < 100
    stamp = next((dataset_path(name, root) / "data").glob("*.hdf5")).stat().st_mtime_ns
    assert recipe.build(**TINY, root=root) == name  # reused, not rebuilt
    assert next((dataset_path(name, root) / "data").glob("*.hdf5")).stat().st_mtime_ns == stamp


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="--noisy must be >= 0"):
        recipe.build(noisy=-1, root=tmp_path)
    with pytest.raises(ValueError, match="at least one episode"):
        recipe.build(controller=0, noisy=0, random=0, root=tmp_path)
    with pytest.raises(ValueError, match="--max-noise"):
        recipe.build(max_noise=0.01, root=tmp_path)


def test_d4rl_reference_scores_and_names():
    assert d4rl_name("hopper_medium_replay-v2") == ("hopper", "medium-replay")
    assert d4rl_name("halfcheetah-medium-expert-v2") == ("halfcheetah", "medium-expert")
    assert d4rl_name("hopper-mediocre-v2") is None and d4rl_name("pendulum-medium-v2") is None
    assert d4rl_references("walker2d-medium-v2") == (1.629008, 4592.3)  # d4rl/infos.py
    assert d4rl_references("hopper_expert-v2") == (-20.272305, 3234.3)
    assert normalise(3234.3, -20.272305, 3234.3) == pytest.approx(100.0)
    assert normalise(-20.272305, -20.272305, 3234.3) == pytest.approx(0.0)
    assert normalise(np.array([1, 2]), 0, 4).tolist() == [25.0, 50.0]


class Facts:
    def __init__(self, **metadata):
        self.metadata, self.source = metadata, "<test>"


def test_settings_from_data_fill_only_what_is_unset():
    minari = Facts(env={"id": "InvertedDoublePendulum-v5", "kwargs": {"x": 1}, "max_episode_steps": 500},
                   ref_min_score=10.0, ref_max_score=20.0, obs_keys=["a", "b.c"])
    assert settings_from_data({}, minari) == {"id": "InvertedDoublePendulum-v5", "kwargs": {"x": 1},
                                              "max_episode_steps": 500, "obs_keys": ["a", "b.c"],
                                              "ref_min_score": 10.0, "ref_max_score": 20.0}
    mine = {"id": "Other-v0", "ref_min_score": 0.0, "ref_max_score": 1.0, "obs_keys": ["b.c", "a"]}
    assert settings_from_data(mine, minari) == mine  # what the user set wins
    d4rl = settings_from_data({}, Facts(format="d4rl-hdf5", dataset_name="hopper-medium-v2"))
    assert d4rl == {"id": "Hopper-v5", "ref_min_score": -20.272305, "ref_max_score": 3234.3}
    with pytest.raises(ValueError, match="env_args.id is null.*names no environment"):
        settings_from_data({}, Facts(format="d4rl-hdf5", dataset_name="mine"))
