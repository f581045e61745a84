"""DQN-Replay import and the on-disk frame store: exact recovery, subsets, bounded memory, clear errors."""
import gzip
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from rmdt.data import SegmentSampler, load_trajectories
from rmdt.data.dqn_replay import convert
from rmdt.data.frame_store import FrameStoreWriter, load_frame_store
from rmdt.data.trajectories import DataError

FRAME = (84, 84)


def save_gz(path, array) -> None:
    with gzip.open(path, "wb", compresslevel=1) as f:
        np.save(f, array)


def random_episodes(rng, count, max_len=25):
    """(frames, actions, rewards) with nonzero frames, so a misplaced padding frame would show."""
    out = []
    for _ in range(count):
        n = int(rng.integers(1, max_len + 1))
        out.append((rng.integers(1, 256, size=(n, *FRAME), dtype=np.uint8), rng.integers(0, 4, n).astype(np.int32),
                    rng.choice(np.array([-1.0, 0.0, 1.0], np.float32), n)))
    return out


def write_checkpoint(logs, suffix, episodes, capacity, unfinished=None) -> dict:
    """Adds episodes as Dopamine does (3 zero rows, the steps, terminal on the last step) to a circular
    buffer of ``capacity`` rows and saves it in the DQN-Replay layout. Returns the add order facts."""
    logs.mkdir(parents=True, exist_ok=True)
    obs = np.zeros((capacity, *FRAME), np.uint8)
    store = {"action": np.zeros(capacity, np.int32), "reward": np.zeros(capacity, np.float32),
             "terminal": np.zeros(capacity, np.uint8)}
    count, terminal_at = 0, []
    runs = [(episode, True) for episode in episodes] + ([(unfinished, False)] if unfinished else [])
    for (frames, actions, rewards), finished in runs:
        for _ in range(3):
            row = count % capacity
            obs[row], store["action"][row], store["reward"][row], store["terminal"][row] = 0, 0, 0, 0
            count += 1
        for t in range(len(actions)):
            row = count % capacity
            obs[row], store["action"][row], store["reward"][row] = frames[t], actions[t], rewards[t]
            store["terminal"][row] = finished and t == len(actions) - 1
            count += 1
        terminal_at.append(count - 1)
    save_gz(logs / f"$store$_observation_ckpt.{suffix}.gz", obs)
    for key, array in store.items():
        save_gz(logs / f"$store$_{key}_ckpt.{suffix}.gz", array)
    save_gz(logs / f"add_count_ckpt.{suffix}.gz", np.array(count))
    save_gz(logs / f"invalid_range_ckpt.{suffix}.gz", np.zeros(4, np.int64))
    return {"add_count": count, "terminal_at": terminal_at[:len(episodes)]}


def states(frames):
    """The 4-frame states of an episode: [0, 0, 0, f0], [0, 0, f0, f1], ..."""
    padded = np.concatenate([np.zeros((3, *FRAME), np.uint8), frames])
    return np.stack([padded[t:t + 4] for t in range(len(frames))])


def assert_store_holds(store, episodes):
    t = load_frame_store(store)
    assert t.num_episodes == len(episodes)
    for e, (frames, actions, rewards) in enumerate(episodes):
        obs, a, r = t.episode(e)
        np.testing.assert_array_equal(a, actions)
        np.testing.assert_array_equal(r, rewards)
        np.testing.assert_array_equal(obs, states(frames))
    return t


def test_an_unwrapped_buffer_gives_back_every_finished_episode_exactly(tmp_path):
    rng = np.random.default_rng(0)
    episodes = random_episodes(rng, 6)
    logs = tmp_path / "Breakout" / "1" / "replay_logs"
    write_checkpoint(logs, 0, episodes, capacity=400, unfinished=random_episodes(rng, 1)[0])
    t = assert_store_holds(convert(tmp_path / "Breakout" / "1", tmp_path / "store", progress=False), episodes)
    assert t.observations.shape == (t.num_steps, 4, 84, 84) and t.observations.dtype == np.uint8
    assert t.num_actions == 4 and t.metadata["game"] == "Breakout"  # from the directory and ALE
    frames_file = tmp_path / "store" / "frames.u8"
    assert frames_file.stat().st_size == (t.num_steps + 3 * t.num_episodes) * 84 * 84  # each frame once


def test_a_wrapped_circular_buffer_keeps_the_complete_episodes_in_time_order(tmp_path):
    rng = np.random.default_rng(1)
    episodes = random_episodes(rng, 40)
    capacity = 200
    facts = write_checkpoint(tmp_path / "replay_logs", 7, episodes, capacity)
    assert facts["add_count"] > 2 * capacity  # wrapped more than once
    oldest = facts["add_count"] - capacity
    # An episode survives when one of its 3 padding rows (those after the previous terminal) is still there.
    kept = [e for e, ep in enumerate(episodes) if e > 0 and facts["terminal_at"][e - 1] + 3 >= oldest]
    assert any((facts["terminal_at"][e] % capacity) < len(episodes[e][1]) + 3 for e in kept)  # one spans the end
    store = convert(tmp_path, tmp_path / "store", game="Breakout", progress=False)
    assert_store_holds(store, [episodes[e] for e in kept])


@pytest.mark.parametrize("overwritten, whole", [(0, True), (1, True), (2, True), (3, False), (5, False)])
def test_the_oldest_episode_of_a_wrapped_buffer_is_kept_when_its_padding_survives(tmp_path, overwritten, whole):
    """The wrap overwrote the first ``overwritten`` rows of episode 1 (3 padding rows, then its steps).
    With a padding row left it is whole and kept; from its first step on it may be cut and is dropped.
    Its first step is a no-op with no reward, which looks like padding until its frame is read."""
    rng = np.random.default_rng(6)
    episodes = random_episodes(rng, 6, max_len=12)
    episodes[1][1][0], episodes[1][2][0] = 0, 0.0
    total = sum(3 + len(actions) for _, actions, _ in episodes)
    oldest = 3 + len(episodes[0][1]) + overwritten
    facts = write_checkpoint(tmp_path / "replay_logs", 0, episodes, capacity=total - oldest)
    assert facts["add_count"] == total
    store = convert(tmp_path, tmp_path / "store", game="Breakout", progress=False)
    assert_store_holds(store, episodes[1 if whole else 2:])


@pytest.mark.slow
def test_windows_sampled_from_the_store_are_the_episode_states(tmp_path):
    rng = np.random.default_rng(2)
    episodes = random_episodes(rng, 8)
    write_checkpoint(tmp_path / "replay_logs", 0, episodes, capacity=300)
    store = convert(tmp_path, tmp_path / "store", num_actions=4, game="Breakout", progress=False)
    t = load_trajectories(store)  # the generic entry point recognises a store directory
    sampler = SegmentSampler(t, context_len=5, num_segments=2, window_starts="uniform", seed=0)
    starts = np.arange(t.num_steps)
    batch = sampler.windows(starts).to("cpu")  # gathers the stacks from the batch's unique frames
    for i, first in enumerate(starts):
        e = int(np.searchsorted(t.episode_starts, first, side="right") - 1)
        offset = first - t.episode_starts[e]
        expected = states(episodes[e][0])[offset:offset + 10]
        n = len(expected)
        np.testing.assert_array_equal(batch.observations[i, :n].numpy(), expected)
        assert not batch.observations[i, n:].any() and batch.mask[i].sum() == n


@pytest.mark.slow
def test_a_step_budget_draws_whole_episodes_reproducibly(tmp_path):
    rng = np.random.default_rng(3)
    for suffix in (0, 1, 2):
        write_checkpoint(tmp_path / "replay_logs", suffix, random_episodes(rng, 12), capacity=400)
    stores = [convert(tmp_path, tmp_path / name, max_steps=100, seed=seed, game="Breakout", progress=False)
              for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    a, b, c = (load_frame_store(s) for s in stores)
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.observations[np.arange(a.num_steps)], b.observations[np.arange(b.num_steps)])
    assert not np.array_equal(a.episode_lengths, c.episode_lengths) or not np.array_equal(a.actions, c.actions)
    for t in (a, c):
        assert 100 <= t.num_steps < 100 + t.episode_lengths.max()  # whole episodes, just past the budget
    assert a.metadata["suffixes"] == [0, 1, 2] and a.metadata["max_steps"] == 100


def cut_rows(path, count) -> None:
    """Rewrites a gzip-wrapped array as a valid gzip stream whose data stops ``count`` rows early."""
    array = np.load(gzip.open(path))
    with gzip.open(path, "wb", compresslevel=1) as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(array))
        f.write(array[:-count].tobytes())


def corrupt_crc(path) -> None:
    data = bytearray(path.read_bytes())
    data[-8] ^= 0xFF  # the CRC32 of the trailer
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, message", [
    (lambda logs: (logs / "$store$_reward_ckpt.0.gz").unlink(), r"missing \$store\$_reward_ckpt\.0\.gz"),
    (lambda logs: (logs / "add_count_ckpt.0.gz").unlink(), r"missing add_count_ckpt\.0\.gz"),
    (lambda logs: save_gz(logs / "$store$_action_ckpt.0.gz", np.zeros(50, np.int32)),
     r"differ in length: .*observation_ckpt\.0\.gz 100, \$store\$_action_ckpt\.0\.gz 50"),
    (lambda logs: (logs / "$store$_observation_ckpt.0.gz").write_bytes(
        (logs / "$store$_observation_ckpt.0.gz").read_bytes()[:20000]),
     r"\$store\$_observation_ckpt\.0\.gz: truncated or corrupt gzip"),
    (lambda logs: (logs / "$store$_terminal_ckpt.0.gz").write_bytes(b"not gzip at all"),
     r"\$store\$_terminal_ckpt\.0\.gz: truncated or corrupt gzip"),
    (lambda logs: save_gz(logs / "$store$_reward_ckpt.0.gz", np.ones(100, np.float32)),
     r"reward_ckpt\.0\.gz: row 0 should be one of the 3 zero padding rows"),
    (lambda logs: (logs / "$store$_observation_ckpt.0.gz").write_bytes(
        (logs / "$store$_observation_ckpt.0.gz").read_bytes()[:-8]),  # no gzip trailer (CRC, length)
     r"\$store\$_observation_ckpt\.0\.gz: truncated or corrupt gzip"),
    (lambda logs: (logs / "$store$_action_ckpt.0.gz").write_bytes(
        (logs / "$store$_action_ckpt.0.gz").read_bytes()[:-4]),
     r"\$store\$_action_ckpt\.0\.gz: truncated or corrupt gzip"),
    (lambda logs: cut_rows(logs / "$store$_observation_ckpt.0.gz", 5),  # the last rows, which no episode uses
     r"\$store\$_observation_ckpt\.0\.gz: truncated or corrupt gzip .*ends at row 95 of 100"),
    (lambda logs: corrupt_crc(logs / "$store$_observation_ckpt.0.gz"),
     r"\$store\$_observation_ckpt\.0\.gz: truncated or corrupt gzip .*CRC"),
])
def test_damaged_replay_files_are_named_in_the_error(tmp_path, damage, message):
    rng = np.random.default_rng(4)
    logs = tmp_path / "replay_logs"
    write_checkpoint(logs, 0, random_episodes(rng, 6, max_len=12), capacity=100)
    damage(logs)
    with pytest.raises(DataError, match=message):
        convert(tmp_path, tmp_path / "store", num_actions=4, game="Breakout", progress=False, chunk_rows=16)
    assert not (tmp_path / "store").exists() and not list(tmp_path.glob(".store.partial-*"))


def test_a_nonzero_padding_frame_and_missing_checkpoints_are_errors(tmp_path):
    rng = np.random.default_rng(5)
    logs = tmp_path / "replay_logs"
    write_checkpoint(logs, 0, random_episodes(rng, 3), capacity=100)
    obs = np.load(gzip.open(logs / "$store$_observation_ckpt.0.gz"))
    obs[1] = 9
    save_gz(logs / "$store$_observation_ckpt.0.gz", obs)
    with pytest.raises(DataError, match=r"observation_ckpt\.0\.gz: row 1 should be an all-zero padding frame"):
        convert(tmp_path, tmp_path / "store", num_actions=4, game="Breakout", progress=False)
    with pytest.raises(DataError, match="no replay_logs directory"):
        convert(tmp_path / "nowhere", tmp_path / "store2", num_actions=4, progress=False)


def test_a_damaged_store_is_named_in_the_error(tmp_path):
    with FrameStoreWriter(tmp_path / "store", FRAME, num_actions=4) as writer:
        writer.add_episode([1, 2, 3], [0.0, 1.0, 0.0], np.ones((3, *FRAME), np.uint8))
        writer.finish()
    assert load_frame_store(tmp_path / "store").num_steps == 3
    frames = tmp_path / "store" / "frames.u8"
    frames.write_bytes(frames.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"frames\.u8: .* \(truncated or missing\)"):
        load_frame_store(tmp_path / "store")
    with pytest.raises(FileExistsError, match="already exists"):
        FrameStoreWriter(tmp_path / "store", FRAME, num_actions=4)
    manifest = tmp_path / "store" / "frame_store.json"
    entries = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({key: value for key, value in entries.items() if key != "stack"}))
    with pytest.raises(DataError, match="frame_store.json: missing or bad entry .*stack"):
        load_frame_store(tmp_path / "store")
    manifest.write_text(json.dumps({**entries, "format": "other"}))
    with pytest.raises(DataError, match="frame_store.json: format 'other'"):
        load_frame_store(tmp_path / "store")


MEMORY_PROBE = textwrap.dedent("""
    import json, sys
    import numpy as np
    from rmdt.data import SegmentSampler
    from rmdt.data.dqn_replay import convert
    from rmdt.data.frame_store import load_frame_store

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

    base_peak, base_anon = status("VmHWM"), status("RssAnon")
    store = convert(sys.argv[1], sys.argv[2], num_actions=4, game="Breakout", progress=False)
    convert_peak = status("VmHWM") - base_peak
    t = load_frame_store(store)
    sampler = SegmentSampler(t, context_len=30, num_segments=3, window_starts="uniform", seed=0)
    anon = 0
    for step in range(40):
        batch = sampler.batch(step, 8)
        assert batch.observations.shape == (8, 90, 4, 84, 84)
        anon = max(anon, status("RssAnon") - base_anon)
    print(json.dumps({"convert_peak": convert_peak, "sampling_anon": anon, "steps": t.num_steps}))
""")


def write_large_checkpoint(logs, rows: int, episode_len: int = 997) -> None:
    """A buffer of ``rows`` frames written in chunks, so the test itself never holds it either."""
    logs.mkdir(parents=True)
    starts = np.arange(0, rows, episode_len + 3)
    terminal = np.zeros(rows, np.uint8)
    ends = np.minimum(starts + 3 + episode_len, rows) - 1
    terminal[ends[ends - starts >= 3]] = 1
    padding = np.zeros(rows, bool)
    for s in starts:
        padding[s:s + 3] = True
    with gzip.open(logs / "$store$_observation_ckpt.0.gz", "wb", compresslevel=1) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (rows, *FRAME)})
        for first in range(0, rows, 4096):
            index = np.arange(first, min(first + 4096, rows))
            chunk = np.broadcast_to((index % 250 + 1).astype(np.uint8)[:, None, None], (len(index), *FRAME))
            f.write(np.where(padding[index, None, None], 0, chunk).astype(np.uint8).tobytes())
    save_gz(logs / "$store$_action_ckpt.0.gz", np.zeros(rows, np.int32))
    save_gz(logs / "$store$_reward_ckpt.0.gz", np.zeros(rows, np.float32))
    save_gz(logs / "$store$_terminal_ckpt.0.gz", terminal)
    save_gz(logs / "add_count_ckpt.0.gz", np.array(rows))


@pytest.mark.slow
def test_memory_stays_bounded_converting_and_sampling_a_buffer_larger_than_the_budget(tmp_path):
    """RSS of a fresh process: the conversion's peak, and the anonymous (heap) memory while sampling
    windows. Pages of the read-only memmap count as resident file pages, but they are page cache
    the kernel can drop at any time, not memory the loader holds."""
    budget = 64 << 20
    rows = 30_000  # 212 MB of frames, more than three times the budget
    write_large_checkpoint(tmp_path / "replay_logs", rows)
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(tmp_path), str(tmp_path / "store")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert rows * 84 * 84 > 3 * budget and figures["steps"] > 29_000
    assert figures["convert_peak"] < budget, figures
    assert figures["sampling_anon"] < budget, figures
