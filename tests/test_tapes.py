"""Tape batching: whole episodes end to end, start flags at timesteps 0, no padding, reproducible."""

import numpy as np
import pytest
import torch
from training_helpers import CONFIG

from rmdt.config import load_config
from rmdt.data import SegmentSampler, TapeSampler, build_sampler
from rmdt.data.returns import returns_to_go
from rmdt.data.trajectories import Trajectories


def make_trajectories(lengths=(3, 7, 1, 5, 12, 2)) -> Trajectories:
    rng = np.random.default_rng(0)
    episodes = [(np.stack([np.full(n, e), np.arange(n)], 1).astype(np.float32),  # obs: (episode, step)
                 rng.integers(0, 4, n), rng.random(n).astype(np.float32)) for e, n in enumerate(lengths)]
    return Trajectories.from_episodes(episodes, num_actions=4)


def test_tapes_hold_whole_episodes_from_their_first_step():
    t = make_trajectories()
    sampler = TapeSampler(t, tape_len=25, discount=0.9, return_scale=2.0, seed=3)
    batch = sampler.batch(step=0, batch_size=5)
    assert batch.observations.shape == (5, 25, 2) and batch.mask.all()
    rtg = returns_to_go(t.rewards, t.episode_starts, 0.9, 2.0)
    lengths = t.episode_lengths
    for row in range(5):
        episode, step = batch.observations[row, :, 0].long(), batch.observations[row, :, 1].long()
        assert torch.equal(step, batch.timesteps[row])  # timesteps count from each episode's start
        assert batch.timesteps[row, 0] == 0
        flat = torch.as_tensor(t.episode_starts[episode.numpy()]) + step
        assert torch.equal(batch.actions[row], torch.as_tensor(t.actions[flat.numpy()]))
        assert torch.equal(batch.returns_to_go[row], torch.as_tensor(rtg[flat.numpy()]))
        starts = torch.nonzero(batch.timesteps[row] == 0).flatten().tolist() + [25]
        for lo, hi in zip(starts[:-1], starts[1:]):
            assert torch.equal(step[lo:hi], torch.arange(hi - lo))  # consecutive steps of one episode
            if hi < 25:  # only the tape's last episode may be cut by its end
                assert hi - lo == lengths[episode[lo]]


def test_batches_are_a_function_of_seed_and_step():
    t = make_trajectories()
    a, b = TapeSampler(t, 30, seed=1), TapeSampler(t, 30, seed=1)
    assert torch.equal(a.batch(4, 6).observations, b.batch(4, 6).observations)
    assert not torch.equal(a.batch(4, 6).observations, a.batch(5, 6).observations)
    assert not torch.equal(a.batch(4, 6).observations, TapeSampler(t, 30, seed=2).batch(4, 6).observations)


def test_every_episode_is_drawn():
    t = make_trajectories()
    batch = TapeSampler(t, 40, seed=0).batch(0, 64)
    seen = set(batch.observations[..., 0][batch.timesteps == 0].long().tolist())
    assert seen == set(range(t.num_episodes))


def test_bad_tape_length_is_refused():
    with pytest.raises(ValueError, match="tape_len"):
        TapeSampler(make_trajectories(), 0)


def test_config_chooses_the_sampler():
    t = make_trajectories()
    tape = load_config(CONFIG, ["model.kind=ffm", "data.batching=tape", "data.prefetch=0"])
    assert isinstance(build_sampler(tape.data, t, 0), TapeSampler)
    segments = load_config(CONFIG, ["model.kind=ffm", "data.prefetch=0"])
    assert isinstance(build_sampler(segments.data, t, 0), SegmentSampler)
