"""Everything a run checks and decides before its run folder exists, so a mistake costs no folder,
no half-written config and (where it needs no data) no dataset build."""
from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
from accelerate import PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import broadcast_object_list

from rmdt.config import Config, ConfigError
from rmdt.data import DataError
from rmdt.data.trajectories import Trajectories


def cpu_processes() -> bool:
    """True for several processes on a machine without CUDA: Accelerate then needs ``cpu=True`` to
    join them with gloo (``accelerate launch --multi_gpu`` starts the ranks but would leave each
    one training alone)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def start_processes(config: Config) -> PartialState:
    """This process's place among the run's processes, joined with ``training.collective_timeout_s``.

    The Accelerator state of an earlier ``train()`` in this process is dropped, so the next one may
    use another mixed precision.
    """
    AcceleratorState._reset_state()
    state = PartialState(cpu=cpu_processes(), timeout=timedelta(seconds=config.training.collective_timeout_s))
    if config.training.compile == "cuda_graphs" and state.device.type != "cuda":
        raise ConfigError(f"training.compile=cuda_graphs captures CUDA graphs, and this run is on {state.device.type}: "
                          "use training.compile=true (torch.compile alone) or false", "training.compile")
    return state


def shard_rows(batch_size: int, state: PartialState, grad_accum: int) -> list[slice]:
    """This process's rows of the global batch, split into its micro-batches."""
    world, rank = state.num_processes, state.process_index
    if batch_size % (world * grad_accum):
        raise ValueError(f"training.batch_size={batch_size} must be divisible by processes ({world}) "
                         f"x training.grad_accum ({grad_accum})")
    micro = batch_size // (world * grad_accum)
    first = rank * micro * grad_accum
    return [slice(first + i * micro, first + (i + 1) * micro) for i in range(grad_accum)]


def resolve_run_dir(config: Config, run_dir: str | Path | None) -> Path:
    """``runs/{name}__{seed}__{time}`` unless given; the main process decides for everyone."""
    chosen = [str(run_dir) if run_dir else f"runs/{config.name}__{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"]
    broadcast_object_list(chosen, from_process=0)
    return Path(chosen[0])


def check_data(config: Config, trajectories: Trajectories) -> None:
    """Model settings that cannot fit the data's shapes, named before any training starts."""
    obs, encoder = trajectories.observations, config.model.obs_encoder
    shape, source = tuple(obs.shape[1:]), trajectories.source
    images = obs.dtype == np.uint8 or len(shape) >= 3
    if encoder == "mlp" and images:
        raise DataError(f"model.obs_encoder=mlp on {obs.dtype} image observations of shape {shape} from {source} "
                        f"(an MLP on {int(np.prod(shape)):,} raw pixels): use model.obs_encoder=nature_cnn")
    if encoder == "nature_cnn" and len(shape) not in (2, 3):
        raise DataError(f"model.obs_encoder=nature_cnn needs image observations, {source} has shape {shape}: "
                        "use model.obs_encoder=mlp")
    if not trajectories.discrete and trajectories.actions.ndim != 2:
        raise DataError(f"{source}: continuous actions must have shape (T, act_dim), got {trajectories.actions.shape}")
