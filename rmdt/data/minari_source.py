"""Minari datasets on disk: read any of them into ``Trajectories``, write new ones atomically.

Minari keeps one more observation than actions per episode (the final one); ``Trajectories`` keeps
the observation each action was taken from, so the final observation is dropped on reading.
Writing uses ``minari.create_dataset_from_buffers``, which (unlike ``DataCollector``) needs no jax.

Where datasets live: an explicit ``root`` (``data.root``, ``--root``) is the only place looked in
and written to. Without one, datasets are read from ``$MINARI_DATASETS_PATH`` and then Minari's own
default folder ``~/.minari/datasets`` (so datasets downloaded with ``minari download`` are found),
and built into the first of them: ``$MINARI_DATASETS_PATH`` when set, else ``~/.minari/datasets``,
never a folder inside the installed package or the source checkout.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from rmdt.data.observations import flatten, leaf_keys
from rmdt.data.staging import make_staging
from rmdt.data.trajectories import DataError, Trajectories, compact_observations

MINARI_DEFAULT_DIR = Path("~/.minari/datasets")  # minari's own default when $MINARI_DATASETS_PATH is unset


def search_roots(root: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for dataset ids, in order: ``root`` alone if given, else
    ``$MINARI_DATASETS_PATH`` (when set) and then ``~/.minari/datasets``."""
    if root:
        return [Path(root)]
    folders = [MINARI_DEFAULT_DIR.expanduser()]
    if os.environ.get("MINARI_DATASETS_PATH"):
        folders.insert(0, Path(os.environ["MINARI_DATASETS_PATH"]))
    return folders


def datasets_root(root: str | os.PathLike | None = None) -> Path:
    """Where new datasets are written: the first folder of ``search_roots``."""
    return search_roots(root)[0]


def dataset_path(dataset: str, root: str | os.PathLike | None = None) -> Path:
    """The directory holding ``data/`` for a dataset directory, or for an id: the first search root
    that holds it complete, else where it would be written."""
    candidate = Path(dataset)
    if candidate.is_dir():
        return candidate.parent if candidate.name == "data" else candidate
    for folder in search_roots(root):
        if (folder / dataset / "data" / "metadata.json").is_file():
            return folder / dataset
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
        searched = ", ".join(str(folder) for folder in search_roots(root))
        raise DataError(f"Minari dataset {dataset!r} not found: no {metadata} (searched {searched}; "
                        f"set MINARI_DATASETS_PATH or data.root, or pass a dataset directory)")
    try:
        data = minari.MinariDataset(path / "data")
        episodes = [(e.observations, e.actions, e.rewards) for e in data.iterate_episodes()]
    except (OSError, KeyError, ValueError, TypeError) as error:  # h5py / minari errors: name the file
        raise DataError(f"{path}: cannot be read as a Minari dataset ({error})") from error
    if not episodes:
        raise DataError(f"{path}: the dataset holds no episodes")
    if any(isinstance(a, dict) for _, a, _ in episodes):
        raise DataError(f"{path}: dict action spaces are not supported")
    facts = {"dataset_id": data.spec.dataset_id, "env_spec": data.spec.env_spec.id if data.spec.env_spec else None,
             **environment_facts(data)}
    if isinstance(data.observation_space, gym.spaces.Dict):
        keys, dropped = leaf_keys(data.observation_space)
        if not keys:
            raise DataError(f"{path}: the dict observations have no numeric entry (only {', '.join(dropped)})")
        facts.update(obs_keys=keys, obs_dropped=dropped)
        episodes = [(flatten(o, keys), a, r) for o, a, r in episodes]
    space = data.action_space
    num_actions = int(space.n) if isinstance(space, gym.spaces.Discrete) else None
    action_dtype = np.float32 if num_actions is None else np.int64
    episodes = [(compact_observations(np.asarray(o)[: len(r)]), as_actions(a, action_dtype),
                 np.asarray(r, np.float32)) for o, a, r in episodes]
    return Trajectories.from_episodes(episodes, source=str(path), num_actions=num_actions, metadata=facts)


def as_actions(actions, dtype) -> np.ndarray:
    """Discrete actions as (T,) integers; continuous ones as (T, act_dim), a (T,) array becoming (T, 1)."""
    actions = np.asarray(actions, dtype)
    return actions[:, None] if dtype == np.float32 and actions.ndim == 1 else actions


def environment_facts(data) -> dict:
    """What evaluation needs from a Minari dataset: the environment to play (its evaluation env spec,
    else the one that collected the data, as ``recover_environment(eval_env=True)`` picks) and the
    reference returns of its normalised score, when the dataset has them."""
    spec = getattr(data, "_eval_env_spec", None) or data.spec.env_spec  # minari has no public eval spec getter
    facts = {}
    if spec is not None:
        facts["env"] = {"id": spec.id, "kwargs": dict(spec.kwargs or {}), "max_episode_steps": spec.max_episode_steps}
    stored = data.storage.metadata
    for key in ("ref_min_score", "ref_max_score"):
        if stored.get(key) is not None:
            facts[key] = float(stored[key])
    return facts


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
    A build that loses a race with another process writing the same id (two seeds of one recipe
    started together) keeps the dataset already in place: ids name their content.
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
        try:
            os.replace(staging / dataset_id, destination)
        except OSError:
            if not destination.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return destination
