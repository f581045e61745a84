"""Run under `accelerate launch`: trains a config and saves this rank's parameters to OUT/rank{i}.pt;
fails if a DistributedDataParallel wrapper is still alive when training ends and destroys the process group.

With RMDT_TEST_HANG_RANK=r set, rank r stops answering (sleeps) before its third batch, to test
training.collective_timeout_s.
"""
import gc
import os
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState

import rmdt.training.trainer as trainer
from rmdt.config import load_config
from rmdt.training import train

out, config_path, *overrides = sys.argv[1:]
if "RMDT_TEST_HANG_RANK" in os.environ:
    build = trainer.build_sampler

    def build_hanging(*args, **kwargs):
        sampler = build(*args, **kwargs)
        batch = sampler.batch

        def hang(step, batch_size):
            if step == 2 and PartialState().process_index == int(os.environ["RMDT_TEST_HANG_RANK"]):
                time.sleep(120)
            return batch(step, batch_size)

        sampler.batch = hang
        return sampler

    trainer.build_sampler = build_hanging
end_training = Accelerator.end_training


def end_training_without_wrappers(self):
    """The process group is destroyed here: nothing may still hold it (a DistributedDataParallel wrapper
    freed after the other process exited hangs in gloo's teardown)."""
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, torch.nn.parallel.DistributedDataParallel)]
    if alive:
        raise SystemExit(f"{len(alive)} DistributedDataParallel wrapper(s) alive when the process group is destroyed")
    end_training(self)


if "RMDT_TEST_HANG_RANK" not in os.environ:  # a run that ends in an error frees its wrappers with the traceback
    Accelerator.end_training = end_training_without_wrappers
result = train(load_config(config_path, overrides), run_dir=Path(out) / "run")
rank = PartialState().process_index
torch.save({k: v.detach().cpu() for k, v in result.policy.state_dict().items()}, Path(out) / f"rank{rank}.pt")
