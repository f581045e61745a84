"""DQN-Replay (Agarwal et al., 2020): read Dopamine replay checkpoints, convert them into a frame store.

Layout: ``<game>/<run>/replay_logs/$store$_{observation,action,reward,terminal}_ckpt.<N>.gz`` and
``add_count_ckpt.<N>.gz``, each a gzip-wrapped ``np.save`` array. A checkpoint is a circular buffer
(1M rows): row r holds the 84x84 frame seen, the action taken, the reward received (Dopamine clips it
to [-1, 1]) and whether the episode ended there. Dopamine adds 3 all-zero padding rows before every
episode, so a state (the last 4 frames) starts as [0, 0, 0, frame_0]; ``add_count`` counts every row
ever added, padding included, so once the buffer has wrapped its oldest row is ``add_count % capacity``.

Only complete episodes are kept: the one cut by the wrap and a last one without its terminal row are
dropped (the oldest episode of a wrapped buffer is kept when its oldest row is one of its padding
rows). Every file is read to its end, so a missing row or a damaged gzip trailer (CRC, length) is an
error. Conversion streams each observation file once, in chunks, and writes every frame once into
a frame store (``rmdt.data.frame_store``), so memory stays bounded whatever the buffer size (7 GB
uncompressed each).

    python -m rmdt.data.dqn_replay dqn_replay/Breakout/1 data/atari/breakout-1pct --max-steps 500000
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rmdt.data.frame_store import FrameStoreWriter
from rmdt.data.trajectories import DataError

STORE_KEYS = ("observation", "action", "reward", "terminal")
PADDING = 3  # zero rows Dopamine writes before every episode (stack size 4, minus 1)
CHUNK_ROWS = 2048  # observation rows read at a time (14 MB of 84x84 frames)


def store_file(logs: Path, key: str, suffix: int) -> Path:
    return logs / (f"$store$_{key}_ckpt.{suffix}.gz" if key in STORE_KEYS else f"{key}_ckpt.{suffix}.gz")


def replay_logs_dir(source) -> Path:
    """``<game>/<run>`` or its ``replay_logs`` directory."""
    source = Path(source)
    logs = source if source.name == "replay_logs" else source / "replay_logs"
    if not logs.is_dir():
        raise DataError(f"{source}: no replay_logs directory (expected the DQN-Replay layout <game>/<run>/replay_logs)")
    return logs


def find_suffixes(logs: Path) -> list[int]:
    """Checkpoint numbers that have any DQN-Replay file (each is then checked to have all of them)."""
    found = {int(m.group(1)) for p in logs.iterdir() if (m := re.search(r"_ckpt\.(\d+)\.gz$", p.name))}
    if not found:
        raise DataError(f"{logs}: no DQN-Replay checkpoints ($store$_observation_ckpt.<N>.gz)")
    return sorted(found)


@contextlib.contextmanager
def _reading(path: Path):
    """Turns the many ways a damaged .gz / .npy fails into a DataError naming the file."""
    try:
        yield
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: truncated or corrupt gzip file ({error})") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a gzip-wrapped np.save array ({error})") from None


def read_array(path: Path) -> np.ndarray:
    """A whole small array (actions, rewards, terminals, add_count), its gzip stream checked to the end."""
    with _reading(path), gzip.open(path, "rb") as f:
        array = np.load(f, allow_pickle=False)
        _expect_end(f, path, len(array) if array.ndim else 1)
        return array


def _expect_end(f, path: Path, rows: int) -> None:
    """Reads on to the end of the gzip stream, which makes gzip check its CRC and length trailer."""
    if f.read(1):
        raise DataError(f"{path}: more data after the {rows} rows its header declares")


def _read_header(f, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    version = np.lib.format.read_magic(f)
    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = header(f)
    if fortran:
        raise DataError(f"{path}: Fortran-ordered arrays are not supported")
    return shape, dtype


def array_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a gzip-wrapped ``np.save`` array, reading only its header."""
    with _reading(path), gzip.open(path, "rb") as f:
        return _read_header(f, path)


def stream_rows(path: Path, chunk_rows: int = CHUNK_ROWS):
    """Yields ``(first_row, rows)`` chunks of a gzip-wrapped ``np.save`` array, never the whole of it.
    Consumed to the end, it has checked every row is there and the gzip trailer (CRC and length)."""
    with _reading(path), gzip.open(path, "rb") as f:
        shape, dtype = _read_header(f, path)
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        for first in range(0, shape[0], chunk_rows):
            count = min(chunk_rows, shape[0] - first)
            data = f.read(count * row_bytes)
            if len(data) != count * row_bytes:
                raise EOFError(f"the array ends at row {first + len(data) // row_bytes} of {shape[0]}")
            yield first, np.frombuffer(data, dtype).reshape(count, *shape[1:])
        _expect_end(f, path, shape[0])


def read_rows(path: Path, rows: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """The frames of a few physical ``rows``, streaming only as far as the last of them."""
    out = {}
    for first, frames in stream_rows(path, chunk_rows):
        for row in rows[(rows >= first) & (rows < first + len(frames))]:
            out[int(row)] = frames[row - first].copy()
        if len(out) == len(set(rows.tolist())):
            break
    return np.stack([out[int(row)] for row in rows])


@dataclass
class Checkpoint:
    """The complete episodes of one replay checkpoint, as positions counted from its oldest row."""

    logs: Path
    suffix: int
    capacity: int  # rows of the circular buffer
    oldest: int  # physical row of the oldest valid row
    starts: np.ndarray  # (E,) first row of each complete episode, counted from the oldest row
    lengths: np.ndarray  # (E,) steps of each episode
    frame_shape: tuple[int, ...]
    unconfirmed: int = 0  # wrapped: the oldest rows taken as the first episode's padding, frames unchecked

    def file(self, key: str) -> Path:
        return store_file(self.logs, key, self.suffix)

    def rows(self, episode: int) -> np.ndarray:
        """Physical rows of an episode, in time order (they may wrap past the end of the buffer)."""
        return (self.oldest + self.starts[episode] + np.arange(self.lengths[episode])) % self.capacity

    def padding_rows(self, episode: int) -> np.ndarray:
        """Physical rows of the padding before an episode still in the buffer (the first episode of a
        wrapped buffer may have lost some of them)."""
        positions = self.starts[episode] - np.arange(PADDING, 0, -1)
        return (self.oldest + positions[positions >= 0]) % self.capacity

    def confirm_first(self) -> bool:
        """Whether the first episode of a wrapped buffer is whole, from the frames of its oldest rows.

        Those rows look like padding in the small arrays (action, reward and terminal 0), but so does a
        no-op step with no reward. A padding frame is all zero: if the oldest row's frame is not, the
        episode began before it and lost its beginning to the wrap. A zero frame with a zero action and
        reward after real padding is dropped with it, which changes no later step's 4-frame state.
        """
        if self.unconfirmed:
            rows = (self.oldest + np.arange(self.unconfirmed)) % self.capacity
            real = read_rows(self.file("observation"), rows).any(axis=(1, 2))
            if real[0]:
                return False
            if real.any():
                first = int(np.argmax(real))
                self.lengths[0] += self.starts[0] - first
                self.starts[0] = first
            self.unconfirmed = 0
        return True


def scan_checkpoint(logs: Path, suffix: int) -> Checkpoint:
    """Finds the complete episodes of a checkpoint from its small arrays; checks shapes and padding."""
    files = {key: store_file(logs, key, suffix) for key in (*STORE_KEYS, "add_count")}
    missing = [p.name for p in files.values() if not p.is_file()]
    if missing:
        raise DataError(f"{logs}: checkpoint {suffix} is missing {', '.join(missing)}")
    obs_shape, obs_dtype = array_header(files["observation"])
    if obs_dtype != np.uint8 or len(obs_shape) != 3:
        raise DataError(f"{files['observation']}: expected uint8 frames (rows, H, W), got {obs_dtype} {obs_shape}")
    arrays = {key: read_array(files[key]) for key in ("action", "reward", "terminal")}
    sizes = {files["observation"].name: obs_shape[0], **{files[k].name: len(a) for k, a in arrays.items()}}
    if len(set(sizes.values())) != 1:
        raise DataError(f"{logs}: checkpoint {suffix} arrays differ in length: "
                        + ", ".join(f"{name} {n}" for name, n in sizes.items()))
    capacity = obs_shape[0]
    add_count = int(read_array(files["add_count"]))
    if add_count <= 0:
        raise DataError(f"{files['add_count']}: add_count is {add_count}; the buffer holds no rows")
    wrapped = add_count > capacity
    oldest = add_count % capacity if wrapped else 0
    order = (oldest + np.arange(min(add_count, capacity))) % capacity
    ends = np.flatnonzero(arrays["terminal"][order])
    # Wrapped: the first episode is whole only if the oldest row is one of its padding rows (a zero row);
    # otherwise it lost its beginning to the wrap and is dropped.
    zero = np.all([arrays[key][order[:PADDING]] == 0 for key in ("action", "reward", "terminal")], axis=0)
    lead = int(np.argmin(zero)) if not zero.all() else len(zero)
    if wrapped and lead and len(ends):
        starts = np.concatenate([[lead], ends[:-1] + 1 + PADDING]).astype(np.int64)
    elif wrapped:
        starts, ends = ends[:-1] + 1 + PADDING, ends[1:]
    else:
        starts = np.concatenate([[PADDING], ends + 1 + PADDING])[:len(ends)].astype(np.int64)
    if np.any(starts > ends):
        bad = int(order[ends[np.argmax(starts > ends)]])
        raise DataError(f"{files['terminal']}: the episode ending at row {bad} has no step after its "
                        f"{PADDING} padding rows")
    positions = (starts[:, None] - np.arange(PADDING, 0, -1)).ravel()
    padding = order[positions[positions >= 0]]
    for key in ("action", "reward", "terminal"):
        if np.any(arrays[key][padding] != 0):
            row = int(padding[np.flatnonzero(arrays[key][padding] != 0)[0]])
            raise DataError(f"{files[key]}: row {row} should be one of the {PADDING} zero padding rows "
                            "before an episode but is not zero")
    return Checkpoint(logs, suffix, capacity, oldest, starts, ends - starts + 1, tuple(obs_shape[1:]),
                      unconfirmed=lead if wrapped and lead and len(ends) else 0)


def choose_episodes(lengths: list[np.ndarray], max_steps: int | None, seed: int) -> list[np.ndarray]:
    """Per checkpoint, a mask of the episodes kept: all of them, or episodes drawn uniformly without
    replacement (reproducibly from ``seed``) until they cover ``max_steps`` steps, the last one whole."""
    if max_steps is None:
        return [np.ones(len(n), bool) for n in lengths]
    flat = np.concatenate(lengths)
    order = np.random.default_rng(seed).permutation(len(flat))
    take = order[: int(np.searchsorted(np.cumsum(flat[order]), max_steps)) + 1]
    keep = np.zeros(len(flat), bool)
    keep[take] = True
    return np.split(keep, np.cumsum([len(n) for n in lengths])[:-1])


def convert(source, out, suffixes=None, max_steps: int | None = None, seed: int = 0, game: str | None = None,
            num_actions: int | None = None, chunk_rows: int = CHUNK_ROWS, progress: bool = True) -> Path:
    """Converts checkpoints of one DQN-Replay run into a frame store at ``out``; returns ``out``.

    ``suffixes``: checkpoint numbers (default: all found). ``max_steps``: keep a random subset of
    whole episodes covering this many steps (the 1% protocol: 500000). ``game`` defaults to the
    directory name (``<game>/<run>``); ``num_actions`` to the size of ALE's minimal action set for it.
    """
    from rmdt.progress import progress_bar

    logs = replay_logs_dir(source)
    checkpoints = [scan_checkpoint(logs, s) for s in (suffixes or find_suffixes(logs))]
    if sum(len(c.lengths) for c in checkpoints) == 0:
        raise DataError(f"{logs}: no complete episode in checkpoints {[c.suffix for c in checkpoints]}")
    shapes = {c.frame_shape for c in checkpoints}
    if len(shapes) != 1:
        raise DataError(f"{logs}: checkpoints have frames of different shapes {sorted(shapes)}")
    game = game or logs.parent.parent.name
    if num_actions is None:
        from rmdt.envs.atari.env import num_actions as ale_num_actions

        num_actions = ale_num_actions(game)
    keep = choose_episodes([c.lengths for c in checkpoints], max_steps, seed)
    for checkpoint, chosen in zip(checkpoints, keep):
        if len(chosen) and chosen[0]:  # read the oldest frames only when the first episode is wanted
            chosen[0] = checkpoint.confirm_first()
    metadata = {"game": game, "source": str(logs.resolve()), "suffixes": [c.suffix for c in checkpoints],
                "max_steps": max_steps, "seed": seed, "rewards": "clipped to [-1, 1] by Dopamine"}
    total = sum(c.capacity for c, k in zip(checkpoints, keep) if k.any())
    with FrameStoreWriter(out, shapes.pop(), num_actions, metadata=metadata) as writer, \
            progress_bar(total=total, desc="frames", unit="row", disable=not progress) as bar:
        for checkpoint, chosen in zip(checkpoints, keep):
            if chosen.any():
                _copy_checkpoint(checkpoint, np.flatnonzero(chosen), writer, num_actions, chunk_rows, bar)
        return writer.finish()


def _copy_checkpoint(checkpoint: Checkpoint, episodes: np.ndarray, writer: FrameStoreWriter, num_actions: int,
                     chunk_rows: int, bar) -> None:
    """Adds the chosen episodes of one checkpoint: small arrays first, then frames in one streaming pass."""
    action, reward = read_array(checkpoint.file("action")), read_array(checkpoint.file("reward"))
    dest = np.full(checkpoint.capacity, -1, np.int64)  # store frame of each buffer row, -1: not kept
    padding = np.zeros(checkpoint.capacity, bool)
    for episode in episodes:
        rows = checkpoint.rows(episode)
        if action[rows].min() < 0 or action[rows].max() >= num_actions:
            raise DataError(f"{checkpoint.file('action')}: actions {action[rows].min()}..{action[rows].max()} "
                            f"outside the game's {num_actions} actions")
        dest[rows] = writer.add_episode(action[rows], reward[rows]) + np.arange(len(rows))
        padding[checkpoint.padding_rows(episode)] = True
    path = checkpoint.file("observation")
    for first, frames in stream_rows(path, chunk_rows):  # to the end: every row and the gzip trailer checked
        where = dest[first:first + len(frames)]
        pad = np.flatnonzero(padding[first:first + len(frames)])
        dirty = pad[frames[pad].any(axis=(1, 2))]
        if len(dirty):
            raise DataError(f"{path}: row {first + dirty[0]} should be an all-zero padding frame before an episode")
        rows = np.flatnonzero(where >= 0)
        # Runs of consecutive rows going to consecutive frames: one write each.
        breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(where[rows]) != 1)) + 1
        for run in np.split(rows, breaks) if len(rows) else []:
            writer.write_frames(int(where[run[0]]), frames[run[0]:run[-1] + 1])
        bar.update(len(frames))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a DQN-Replay run directory <game>/<run> (or its replay_logs)")
    parser.add_argument("out", help="frame store directory to create (then: data.dataset=<out>)")
    parser.add_argument("--suffixes", type=int, nargs="+", default=None, help="checkpoint numbers (default: all)")
    parser.add_argument("--max-steps", type=int, default=None, help="keep random whole episodes covering this "
                                                                    "many steps (1%% protocol: 500000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the episode subset")
    parser.add_argument("--game", default=None, help="ALE game name (default: the <game> directory name)")
    args = parser.parse_args(argv)
    from rmdt.data.frame_store import load_frame_store

    out = convert(args.source, args.out, args.suffixes, args.max_steps, args.seed, args.game)
    print(f"frame store at {out}")
    print(load_frame_store(out).summary())


if __name__ == "__main__":
    main()
