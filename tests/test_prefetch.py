"""The input pipeline: prefetched batches are the sampler's batches, and frame-store batches carry
unique frames + an index that gather to exactly the stacks models saw before."""
import numpy as np
import pytest
import torch
from training_helpers import CONFIG, params

from rmdt.config import load_config
from rmdt.data import SegmentSampler, TapeSampler, Trajectories, build_sampler
from rmdt.data.frame_store import FrameStacks, FrameStoreWriter, load_frame_store
from rmdt.data.prefetch import PrefetchingSampler
from rmdt.training import train


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(0)
    with FrameStoreWriter(tmp_path / "store", (12, 10), num_actions=3) as writer:
        for n in (30, 4, 17, 50):
            writer.add_episode(rng.integers(0, 3, n), rng.random(n), rng.integers(0, 256, (n, 12, 10), dtype=np.uint8))
        writer.finish()
    return load_frame_store(tmp_path / "store")


def assert_same_batches(a, b):
    for name in ("returns_to_go", "observations", "actions", "rewards", "timesteps", "mask"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_frame_store_windows_gather_on_the_device_to_the_stacks_of_each_step(store):
    sampler = SegmentSampler(store, context_len=5, num_segments=3, window_starts="uniform", seed=0)
    firsts = np.arange(store.num_steps)
    batch = sampler.windows(firsts)
    assert isinstance(batch.observations, FrameStacks) and batch.observations.shape == (len(firsts), 15, 4, 12, 10)
    assert batch.observations.frames.shape[0] < batch.observations.index.numel()  # each frame travels once
    gathered = batch.to("cpu")
    index = np.minimum(firsts[:, None] + np.arange(15), store.num_steps - 1)
    expected = torch.from_numpy(store.observations[index])  # the materialised stacks, as models saw them
    expected[~batch.mask] = 0  # padding steps: all-zero stacks
    assert gathered.observations.dtype == torch.uint8 and torch.equal(gathered.observations, expected)
    rows = batch[2:5].to("cpu")  # a process's shard gathers its own rows
    assert torch.equal(rows.observations, expected[2:5])


def test_frame_store_tapes_gather_to_the_same_stacks(store):
    episodes = np.array([[3, 1, 0, 2], [1, 2, 1, 0], [0, 2, 3, 1]])
    batch = TapeSampler(store, tape_len=40, seed=3).tapes(episodes)
    assert isinstance(batch.observations, FrameStacks)
    starts = store.episode_starts
    for row, chosen in enumerate(episodes):
        steps = np.concatenate([np.arange(starts[e], starts[e + 1]) for e in chosen])[:40]
        expected = torch.from_numpy(store.observations[steps])
        assert torch.equal(batch[row:row + 1].to("cpu").observations[0], expected)


def test_prefetched_batches_are_the_samplers_in_order_after_jumps_and_size_changes():
    rng = np.random.default_rng(1)
    data = Trajectories.from_episodes([(rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 2, n),
                                        rng.random(n).astype(np.float32)) for n in (9, 30, 14)], num_actions=2)
    plain = SegmentSampler(data, 4, 2, "uniform", seed=5)
    ahead = PrefetchingSampler(SegmentSampler(data, 4, 2, "uniform", seed=5), workers=2, depth=3)
    for step, size in [(0, 8), (1, 8), (2, 8), (7, 8), (3, 8), (4, 5), (5, 5), (5, 5)]:
        assert_same_batches(ahead.batch(step, size), plain.batch(step, size))
    assert ahead.trajectories is data  # the wrapped sampler's attributes show through
    ahead.close()
    built = build_sampler(load_config(CONFIG, ["data.prefetch=3"]).data, data, 5)
    bare = build_sampler(load_config(CONFIG, ["data.prefetch=0"]).data, data, 5)
    assert isinstance(built, PrefetchingSampler) and built.workers == 3 and isinstance(bare, SegmentSampler)
    assert_same_batches(built.batch(4, 8), bare.batch(4, 8))
    with pytest.raises(ValueError, match="workers"):
        PrefetchingSampler(plain, workers=0)


def test_prefetch_on_and_off_train_bit_identical_parameters(tiny, tmp_path):  # noqa: F811
    off = params(train(load_config(CONFIG, tiny + ["data.prefetch=0"]), run_dir=tmp_path / "off").policy)
    on = params(train(load_config(CONFIG, tiny + ["data.prefetch=2"]), run_dir=tmp_path / "on").policy)
    for key in off:
        assert torch.equal(off[key], on[key]), key
