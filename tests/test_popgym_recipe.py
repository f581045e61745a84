"""POPGym recipes: every oracle beats random play, never reads what is drawn after its step, and the
datasets round-trip through Minari with their reference returns."""
import copy
import json
import random

import numpy as np
import pytest

from rmdt.data.minari_source import load_minari, metadata_file
from rmdt.envs.gymnasium.wrappers import PopgymFlat
from rmdt.envs.popgym import recipe

EASY = [family + "Easy" for family in recipe.ORACLES]


@pytest.mark.parametrize("task", EASY)
@pytest.mark.slow
def test_oracle_beats_random_play(task):
    oracle = [e[2].sum() for e in recipe.play(task, 4, 0.0, seed=1)]
    randomly = [e[2].sum() for e in recipe.play(task, 4, 1.0, seed=1)]
    assert np.mean(oracle) > np.mean(randomly) + 0.3, (oracle, randomly)


def redraw_future(env, rng: np.random.Generator) -> None:
    """Everything drawn after now, drawn again: the environment's RNGs and the order of undealt cards."""
    env.np_random = np.random.default_rng(rng.integers(2**32))
    np.random.seed(int(rng.integers(2**32)))
    random.seed(int(rng.integers(2**32)))
    if type(env).__name__.startswith("Concentration"):
        return  # its "deck" is the board already laid out (present state), nothing is dealt from it
    for deck in (v for v in vars(env).values() if type(v).__name__ == "Deck"):
        deck.idx[:deck.deck_len] = rng.permutation(deck.idx[:deck.deck_len])  # undealt cards


def check_no_peeking(task, oracle, episodes=3) -> None:
    """At every step the oracle's action equals its action on a copy whose future was redrawn."""
    rng = np.random.default_rng(0)
    env = recipe.make_env(task)
    for i in range(episodes):
        env.reset(seed=i)
        done = False
        while not done:
            action = oracle(env.unwrapped)
            twin = copy.deepcopy(env.unwrapped)
            redraw_future(twin, rng)
            assert np.array_equal(oracle(twin), action), f"{task}: the oracle's action depends on the future"
            explore = rng.random() < 0.3  # leave the oracle's path now and then
            step = rng.integers(env.action_space.n) if explore else env.flat_action(action)
            _, _, terminated, truncated, _ = env.step(step)
            done = terminated or truncated


@pytest.mark.parametrize("task", EASY)
def test_oracle_never_peeks_at_the_future(task):
    check_no_peeking(task, recipe.ORACLES[recipe.parse_task(task)[1]])


def test_the_peeking_check_catches_an_oracle_that_reads_the_next_card():
    def clairvoyant(env):
        shown = env.deck.show("player", ["ranks_idx"]).item()
        return 0 if env.deck.ranks_idx[env.deck.idx[env.deck.deck_len - 1]] > shown else 1

    with pytest.raises(AssertionError, match="depends on the future"):
        check_no_peeking("HigherLowerEasy", clairvoyant)


@pytest.mark.parametrize("task", ["MineSweeperEasy", "AutoencodeEasy"])
def test_dataset_round_trips_with_references(tmp_path, task):
    args = dict(task=task, episodes=6, random_share=0.25, seed=3)
    name = recipe.build(**args, root=tmp_path)
    assert name == f"rmdt/popgym-{task}-oracle-e6-r0p25-s3-v0"
    loaded = load_minari(name, tmp_path)
    played = recipe.play(task, 6, 0.25, 3)
    env = recipe.make_env(task)
    assert loaded.num_actions == env.action_space.n and loaded.num_episodes == 6
    for i, (obs, actions, rewards, _, _) in enumerate(played):
        got_obs, got_actions, got_rewards = loaded.episode(i)
        np.testing.assert_array_equal(got_obs, obs[:-1])
        np.testing.assert_array_equal(got_actions, actions)
        np.testing.assert_allclose(got_rewards, rewards, rtol=1e-6)
    meta = json.loads(metadata_file(name, tmp_path).read_text())
    assert meta["ref_max_score"] > meta["ref_min_score"]
    assert meta["env_spec"] and recipe.env_id(task) in meta["env_spec"]
    stamp = metadata_file(name, tmp_path).stat().st_mtime_ns
    assert recipe.build(**args, root=tmp_path) == name
    assert metadata_file(name, tmp_path).stat().st_mtime_ns == stamp  # reused, not rebuilt


def test_flat_wrapper_one_hots_observations_and_ravels_cell_actions():
    env = recipe.make_env("MineSweeperEasy")
    assert isinstance(env, PopgymFlat) and env.action_space.n == 16
    assert env.flat_action(np.array([2, 3])) == 11
    np.testing.assert_array_equal(env.native_action(11), [2, 3])
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (3,) and obs.sum() == 1  # one-hot of Discrete(3)
    auto = recipe.make_env("AutoencodeEasy")
    assert auto.reset(seed=0)[0].shape == (2 + 4,)  # Tuple(Discrete(2), Discrete(4)) -> two one-hots


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match="did you mean RepeatFirstEasy"):
        recipe.build(task="RepeatFirstEasyy", episodes=2, root=tmp_path)
    with pytest.raises(ValueError, match="PositionOnlyPendulumEasy.*has no oracle"):
        recipe.build(task="popgym-PositionOnlyPendulumEasy-v0", episodes=2, root=tmp_path)
    with pytest.raises(ValueError, match="random-share"):
        recipe.build(task="RepeatFirstEasy", episodes=2, random_share=1.5, root=tmp_path)
    with pytest.raises(ValueError, match="episodes"):
        recipe.build(task="RepeatFirstEasy", episodes=0, root=tmp_path)
