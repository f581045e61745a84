"""Offline data: sources that read datasets into ``Trajectories``, and the window sampler."""
from __future__ import annotations

import os

from rmdt.data.d4rl_hdf5 import load_d4rl_hdf5
from rmdt.data.frame_store import is_frame_store, load_frame_store
from rmdt.data.minari_source import load_minari
from rmdt.data.segments import Batch, SegmentSampler
from rmdt.data.tapes import TapeSampler
from rmdt.data.trajectories import DataError, Trajectories

HDF5_SUFFIXES = (".hdf5", ".h5")


def load_trajectories(source: str | os.PathLike, root=None, num_actions: int | None = None) -> Trajectories:
    """A D4RL-layout file for ``*.hdf5`` / ``*.h5`` paths, a frame store directory (Atari), otherwise a
    Minari dataset id or directory."""
    if str(source).endswith(HDF5_SUFFIXES):
        return load_d4rl_hdf5(source, num_actions=num_actions)
    if is_frame_store(source):
        return load_frame_store(source)
    return load_minari(str(source), root=root)


def load_config_data(data) -> Trajectories:
    """The trajectories a ``DataConfig`` names: built by its recipe (reused if on disk) or read as is."""
    if data.recipe is not None:
        from rmdt.envs.registry import ENVS

        name = ENVS.recipe(data.recipe).build(**data.recipe_args, root=data.root)
        return load_trajectories(name, root=data.root)
    return load_trajectories(data.dataset, root=data.root, num_actions=data.num_actions)


def build_sampler(data, trajectories: Trajectories, seed: int):
    """The batch sampler a ``DataConfig`` asks for: padded segments or tapes of whole episodes, built
    ahead by ``data.prefetch`` threads (in pinned memory when CUDA is there)."""
    if data.batching == "tape":
        sampler = TapeSampler(trajectories, data.tape_len, data.discount, data.return_scale, seed=seed)
    else:
        sampler = SegmentSampler(trajectories, data.context_len, data.num_segments, data.window_starts,
                                 data.discount, data.return_scale, seed=seed)
        if data.num_segments_schedule is not None:
            from rmdt.data.curriculum import CurriculumSampler

            sampler = CurriculumSampler(sampler, data.num_segments_schedule, data.num_segments)
    if not data.prefetch:
        return sampler
    import torch

    from rmdt.data.prefetch import PrefetchingSampler

    return PrefetchingSampler(sampler, data.prefetch, pin_memory=torch.cuda.is_available())


__all__ = ["Batch", "DataError", "SegmentSampler", "TapeSampler", "build_sampler", "Trajectories", "load_d4rl_hdf5", "load_minari",
           "load_config_data", "load_trajectories"]
