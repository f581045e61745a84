"""Minari datasets on disk: read any of them into ``Trajectories``, write new ones atomically.

Minari keeps one more observation than actions per episode (the final one); ``Trajectories`` keeps
the observation each action was taken from, so the final observation is dropped on reading.
Writing uses ``minari.create_dataset_from_buffers``, which (unlike ``DataCollector``) needs no jax.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from rmdt.data.staging import make_staging
from rmdt.data.trajectories import DataError, Trajectories, compact_observations

PROJECT_DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "minari"


def datasets_root(root: str | os.PathLike | None = None) -> Path:
    """Where Minari datasets live: ``root`` if given, else ``$MINARI_DATASETS_PATH``, else ``data/minari``."""
    return Path(root or os.environ.get("MINARI_DATASETS_PATH") or PROJECT_DATA_DIR)


def dataset_path(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """The directory holding ``data/`` for a dataset id or a path to a dataset directory."""
    candidate = Path(dataset)
    if candidate.is_dir():
        return candidate.parent if candidate.name == "data" else candidate
    return datasets_root(root) / dataset


def metadata_file(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """The file whose presence means a complete dataset (datasets are renamed into place whole)."""
    return dataset_path(dataset, root) / "data" / "metadata.json"


def load_minari(dataset: str, root: str | os.PathLike | None = None) -> Trajectories:
    """Reads a Minari dataset (an id under the datasets root, or a path) into ``Trajectories``."""
    import gymnasium as gym
    import minari

    path, metadata = dataset_path(dataset, root), metadata_file(dataset, root)
    if not metadata.is_file():
        raise DataError(f"Minari dataset {dataset!r} not found: no {metadata} "
                        f"(set MINARI_DATASETS_PATH or pass a dataset directory)")
    try:
        data = minari.MinariDataset(path / "data")
        episodes = [(e.observations, e.actions, e.rewards) for e in data.iterate_episodes()]
    except (OSError, KeyError, ValueError, TypeError) as error:  # h5py / minari errors: name the file
        raise DataError(f"{path}: cannot be read as a Minari dataset ({error})") from error
    if not episodes:
        raise DataError(f"{path}: the dataset holds no episodes")
    if any(isinstance(o, dict) or isinstance(a, dict) for o, a, _ in episodes):
        raise DataError(f"{path}: dict observation or action spaces are not supported yet")
    space = data.action_space
    num_actions = int(space.n) if isinstance(space, gym.spaces.Discrete) else None
    action_dtype = np.float32 if num_actions is None else np.int64
    episodes = [(compact_observations(np.asarray(o)[: len(r)]), np.asarray(a, action_dtype),
                 np.asarray(r, np.float32)) for o, a, r in episodes]
    return Trajectories.from_episodes(episodes, source=str(path), num_actions=num_actions,
                                      metadata={"dataset_id": data.spec.dataset_id,
                                                "env_spec": data.spec.env_spec.id if data.spec.env_spec else None})


@contextlib.contextmanager
def _minari_root(root: Path):
    """Points minari at ``root`` for the duration of a call (it reads the variable on every call)."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def write_minari(dataset_id: str, buffers: list, root: str | os.PathLike | None = None, **kwargs) -> Path:
    """Writes ``minari.data_collector.EpisodeBuffer``s as a dataset, atomically.

    The dataset is written into a temporary directory beside its destination and renamed into
    place, so an interrupted build never leaves a half-written dataset that would later be reused;
    the next build there removes the staging folders that killed builds left (``rmdt.data.staging``).
    ``kwargs`` go to ``minari.create_dataset_from_buffers`` (env, spaces, description, ...). Pixels
    are stored losslessly unless ``jpeg_encoding=True`` is asked for (minari's default is lossy JPEG).
    """
    import minari

    kwargs.setdefault("jpeg_encoding", False)
    destination = datasets_root(root) / dataset_id
    if destination.exists():
        raise FileExistsError(f"{destination} already exists")
    staging = make_staging(destination.parent, ".staging-")  # sweeps those of killed builds first
    try:
        with _minari_root(staging), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # nags about optional metadata (author, ...)
            minari.create_dataset_from_buffers(dataset_id, buffers, **kwargs)
        os.replace(staging / dataset_id, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination
