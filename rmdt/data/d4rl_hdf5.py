"""D4RL-layout HDF5 files, read with h5py alone (the ``d4rl`` package does not import on a current stack).

Layout: flat datasets ``observations`` (T, ...), ``actions`` (T, ...), ``rewards`` (T,), and episode
ends in ``terminals`` and/or ``timeouts`` (T,) booleans; ``next_observations``, ``infos/*`` and
``metadata/*`` may be present. Of the metadata, ``env_id`` (a gymnasium id) and ``ref_min_score`` /
``ref_max_score`` (the returns scored 0 and 100) are read when present, as rmdt's MuJoCo recipe writes them,
so evaluation needs no setting; D4RL's own files have none and are known by name. An episode ends after every step where
``terminals`` or ``timeouts`` is set; steps after the last end form a final episode (a file cut
mid-episode, as many D4RL files are). Continuous actions stored as (T,) (one action dimension) are
read as (T, 1). The file's name says which D4RL dataset it is (``hopper-medium-v2.hdf5``, or
``hopper_medium-v2.hdf5`` as D4RL's download names it): it is recorded as ``dataset_name`` so that
evaluation can find the dataset's reference scores.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rmdt.data.trajectories import DataError, Trajectories, compact_observations

REQUIRED = ("observations", "actions", "rewards")


def load_d4rl_hdf5(path: str | os.PathLike, num_actions: int | None = None) -> Trajectories:
    """Reads a D4RL-layout file. Actions are continuous unless ``num_actions`` says they are discrete."""
    import h5py

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"D4RL HDF5 file not found: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path}: not a readable HDF5 file ({error})") from error
    with handle:
        missing = [key for key in REQUIRED if key not in handle]
        if missing:
            raise DataError(f"{path}: missing dataset(s) {', '.join(missing)} "
                            f"(found: {', '.join(sorted(handle.keys()))})")
        if "terminals" not in handle and "timeouts" not in handle:
            raise DataError(f"{path}: needs 'terminals' or 'timeouts' to split episodes")
        arrays = {key: handle[key][()] for key in (*REQUIRED, "terminals", "timeouts") if key in handle}
        facts = file_facts(handle)
    observations, actions = arrays["observations"], arrays["actions"]
    rewards = np.asarray(arrays["rewards"]).reshape(-1)
    total = len(rewards)
    for key in ("observations", "actions", "terminals", "timeouts"):
        if key in arrays and len(arrays[key]) != total:
            raise DataError(f"{path}: '{key}' has {len(arrays[key])} rows but 'rewards' has {total}")
    if total == 0:
        raise DataError(f"{path}: the file holds no steps")
    ends = np.zeros(total, bool)
    for key in ("terminals", "timeouts"):
        if key in arrays:
            ends |= np.asarray(arrays[key]).reshape(-1).astype(bool)
    starts = np.concatenate([[0], np.flatnonzero(ends[:-1]) + 1, [total]]).astype(np.int64)
    if num_actions is None:
        actions = np.asarray(actions, np.float32)
        actions = actions[:, None] if actions.ndim == 1 else actions
    else:
        actions = discrete_actions(np.asarray(actions), path)
    return Trajectories(observations=compact_observations(observations), actions=actions, rewards=rewards.astype(np.float32),
                        episode_starts=starts, source=str(path), num_actions=num_actions,
                        metadata={"format": "d4rl-hdf5", "dataset_name": path.stem.replace("_", "-"), **facts})


def file_facts(handle) -> dict:
    """The environment and the reference returns a file's ``metadata/*`` records (none in D4RL's own files)."""
    found = {}
    for key in ("env_id", "ref_min_score", "ref_max_score"):
        if f"metadata/{key}" in handle:
            value = handle[f"metadata/{key}"][()]
            found[key] = value.decode() if isinstance(value, bytes) else value
    facts = {"env": {"id": found["env_id"]}} if "env_id" in found else {}
    if "ref_min_score" in found and "ref_max_score" in found:
        facts.update(ref_min_score=float(found["ref_min_score"]), ref_max_score=float(found["ref_max_score"]))
    return facts


def discrete_actions(actions: np.ndarray, path: Path) -> np.ndarray:
    """(T,) or (T, 1) whole numbers as int64; fractions are an error, not truncated to another action."""
    if actions.ndim > 2 or actions.ndim == 2 and actions.shape[1] != 1:
        raise DataError(f"{path}: 'actions' of shape {actions.shape} are not one discrete action per step "
                        "(data.num_actions is set)")
    actions = actions.reshape(-1)
    if not np.issubdtype(actions.dtype, np.integer):
        whole = np.isfinite(actions) & (actions == np.round(actions)) if np.issubdtype(actions.dtype, np.number) \
            else np.zeros(len(actions), bool)
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            raise DataError(f"{path}: 'actions' must be whole numbers with data.num_actions set, found "
                            f"{actions[row].item()!r} at row {row} (continuous actions: leave data.num_actions null)")
    return actions.astype(np.int64)
