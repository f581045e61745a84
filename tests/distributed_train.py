"""Run under `accelerate launch`: trains a config and saves this rank's parameters to OUT/rank{i}.pt.

With RMDT_TEST_HANG_RANK=r set, rank r stops answering (sleeps) before its third batch, to test
training.collective_timeout_s.
"""
import os
import sys
import time
from pathlib import Path

import torch
from accelerate import PartialState

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
result = train(load_config(config_path, overrides), run_dir=Path(out) / "run")
rank = PartialState().process_index
torch.save({k: v.detach().cpu() for k, v in result.policy.state_dict().items()}, Path(out) / f"rank{rank}.pt")
