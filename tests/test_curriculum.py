"""Curriculum over segments per window: schedules, batches that depend only on (seed, step), config errors."""

import numpy as np
import pytest
import torch
from training_helpers import CONFIG

from rmdt.config import ConfigError, load_config
from rmdt.data import Trajectories, build_sampler
from rmdt.data.curriculum import CurriculumSampler, parse_schedule, segments_at
from rmdt.data.segments import SegmentSampler


def trajectories(episodes=20, length=13) -> Trajectories:
    g = np.random.default_rng(0)
    n = episodes * length
    return Trajectories(observations=g.normal(size=(n, 2)).astype(np.float32), actions=g.integers(0, 3, n),
                        rewards=g.normal(size=n).astype(np.float32),
                        episode_starts=np.arange(0, n + 1, length), num_actions=3, source="test")


def test_pairs_and_linear_schedules():
    assert parse_schedule([[0, 1], [10, 3]], 3) == [(0, 1), (10, 3)]
    assert parse_schedule("linear 1->3 over 300", 3) == [(0, 1), (100, 2), (200, 3)]
    pairs = parse_schedule("linear 1->3 over 300", 3)
    assert [segments_at(pairs, s) for s in (0, 99, 100, 199, 200, 10_000)] == [1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("schedule, match", [
    ([[1, 1]], "start at 0"), ([[0, 1], [0, 2]], "start at 0 and increase"), ([[0, 4]], r"1\.\.data\.num_segments=3"),
    ("linear 3->1 over 10", "A <= B"), ("1 to 3", "list of \\[step, N\\] pairs"), ([[0, 1.5]], "list of"),
])
def test_bad_schedules_name_the_key(schedule, match):
    with pytest.raises(ValueError, match="data.num_segments_schedule"):
        parse_schedule(schedule, 3)
    with pytest.raises(ValueError, match=match):
        parse_schedule(schedule, 3)


def test_config_checks_the_schedule():
    with pytest.raises(ConfigError, match="data.num_segments_schedule"):
        load_config(CONFIG, ["data.num_segments_schedule=[[0, 5]]"])
    assert load_config(CONFIG, ["data.num_segments_schedule=linear 1->3 over 30"]).data.num_segments_schedule


def test_batches_are_the_first_n_segments_of_the_full_windows_and_depend_only_on_seed_and_step():
    data = trajectories()
    full = SegmentSampler(data, context_len=2, num_segments=3, seed=4)
    curriculum = CurriculumSampler(SegmentSampler(data, context_len=2, num_segments=3, seed=4),
                                   [[0, 1], [5, 2], [9, 3]], 3)
    for step, n in ((0, 1), (4, 1), (5, 2), (9, 3), (50, 3)):
        got, want = curriculum.batch(step, 6), full.batch(step, 6)
        assert got.mask.shape == (6, 2 * n)
        for name in ("returns_to_go", "observations", "actions", "mask", "timesteps"):
            assert torch.equal(getattr(got, name), getattr(want, name)[:, :2 * n])
    assert torch.equal(curriculum.batch(5, 6).observations, curriculum.batch(5, 6).observations)


def test_build_sampler_applies_the_config_schedule():
    config = load_config(CONFIG, ["data.context_len=2", "data.num_segments_schedule=[[0, 1], [2, 3]]"])
    sampler = build_sampler(config.data, trajectories(), seed=0)
    assert sampler.batch(0, 4).mask.shape == (4, 2) and sampler.batch(2, 4).mask.shape == (4, 6)
