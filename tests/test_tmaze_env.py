import gymnasium as gym
import numpy as np
import pytest

import rmdt  # noqa: F401  (registers rmdt/TMaze-v0)
from rmdt.envs.tmaze.env import DOWN, LEFT, RIGHT, UP, TMazeEnv, TMazeVectorEnv, oracle_actions


def run(env, actions):
    out = []
    for a in actions:
        out.append(env.step(a))
        if out[-1][2] or out[-1][3]:
            break
    return out


@pytest.mark.parametrize("length", [1, 2, 5, 30, 200])
def test_oracle_always_succeeds(length):
    for seed in range(20):
        env = gym.make("rmdt/TMaze-v0", corridor_length=length)
        obs, info = env.reset(seed=seed)
        assert obs[1] == info["clue"] != 0
        steps = run(env, oracle_actions(length, info["clue"]))
        assert len(steps) == length + 1
        assert [s[1] for s in steps] == [0.0] * length + [1.0]
        assert steps[-1][2] and not steps[-1][3]


def test_wrong_turn_gets_zero():
    env = TMazeEnv(corridor_length=4)
    for seed in range(10):
        _, info = env.reset(seed=seed)
        wrong = DOWN if info["clue"] > 0 else UP
        steps = run(env, [RIGHT] * 4 + [wrong])
        assert steps[-1][1] == 0.0 and steps[-1][2]
        assert steps[-1][0][0] == (-1 if wrong == DOWN else 1)


def test_observation_clue_flag_noise_and_walls():
    env = TMazeEnv(corridor_length=3)
    obs, info = env.reset(seed=0)
    assert obs[2] == 0 and obs[0] == 0
    # up/down inside the corridor and left at x=0 are walls: nothing happens, no reward, no end
    for a in (UP, DOWN, LEFT):
        obs, r, term, trunc, _ = env.step(a)
        assert (obs[0], obs[1], obs[2], r, term) == (0, 0, 0, 0.0, False)
    env.reset(seed=1)
    flags = [env.step(RIGHT)[0][2] for _ in range(3)]
    assert flags == [0, 0, 1]  # flag exactly at the junction
    obs, r, term, trunc, _ = env.step(RIGHT)  # right at the junction is a wall
    assert obs[2] == 1 and not term and not trunc
    noise = [env.reset(seed=s)[0][3] for s in range(50)]
    assert set(noise) == {-1.0, 0.0, 1.0}


def test_timeout_after_length_plus_two_steps():
    env = TMazeEnv(corridor_length=3)
    env.reset(seed=0)
    steps = run(env, [LEFT] * 10)
    assert len(steps) == 5 and steps[-1][3] and not steps[-1][2]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(RIGHT)


def test_vector_env_runs_many_lengths_and_matches_oracle():
    lengths = np.array([1, 4, 9, 30])
    env = gym.make_vec("rmdt/TMaze-v0", num_envs=4, vectorization_mode="vector_entry_point",
                       corridor_length=lengths)
    assert isinstance(env, TMazeVectorEnv)
    obs, info = env.reset(seed=7)
    np.testing.assert_array_equal(obs[:, 1], info["clue"])
    total, ended_at = np.zeros(4), np.full(4, -1)
    for t in range(lengths.max() + 1):
        action = np.where(t < lengths, RIGHT, np.where(info["clue"] > 0, UP, DOWN))
        obs, reward, term, trunc, _ = env.step(action)
        total += reward
        ended_at[term & (ended_at < 0)] = t
    np.testing.assert_array_equal(total, 1.0)
    np.testing.assert_array_equal(ended_at, lengths)
    # finished corridors stay finished and pay nothing more; a masked reset restarts only those rows
    assert env.step(np.full(4, UP))[1].sum() == 0
    mask = np.array([True, False, False, True])
    env.reset(options={"reset_mask": mask})
    np.testing.assert_array_equal(env.done, ~mask)


def test_bad_arguments():
    with pytest.raises(ValueError, match="corridor_length"):
        TMazeEnv(corridor_length=0)
    env = TMazeVectorEnv(2, 3)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions"):
        env.step(np.array([0, 7]))
