"""The one trainer: any policy, any dataset, one CPU to many GPUs through Hugging Face Accelerate.

Every process draws the same global batch for a step (``sampler.batch(step)``: padded segments or
tapes of whole episodes, as ``data.batching`` says) and trains
on its own rows of it, in ``grad_accum`` micro-batches. Each micro-batch's mean loss is weighted by
its share of the global batch's real steps, so the update is the gradient of the global mean loss
whatever the number of processes or micro-batches: one process and two give the same parameters
(up to float summation order), and a resumed run continues exactly where it stopped.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from transformers.utils import logging as hf_logging

from rmdt.config import Config
from rmdt.data import build_sampler, load_config_data
from rmdt.data.trajectories import Trajectories
from rmdt.evaluation import env_evaluator, evaluate_policy
from rmdt.models.factory import build_policy
from rmdt.progress import progress_bar
from rmdt.training.checkpoint import checkpoint_dirs, load_checkpoint, save_checkpoint
from rmdt.training.logs import RunLogger

log = logging.getLogger("rmdt.train")


class LossForward(torch.nn.Module):
    """Routes ``policy.loss`` through ``forward`` so DistributedDataParallel's gradient hooks see it."""

    def __init__(self, policy: torch.nn.Module) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, batch):
        return self.policy.loss(batch)


def make_optimizer(model: torch.nn.Module, config: Config):
    """AdamW without decay on biases, norms and embeddings; linear warm-up then cosine decay."""
    t = config.training
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 and "embed" not in name and "position" not in name
             and name != "memory" else no_decay).append(param)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=t.lr, betas=tuple(t.betas))

    def factor(step: int) -> float:
        if step < t.warmup_steps:
            return (step + 1) / t.warmup_steps
        progress = min(1.0, (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps))
        return t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def cpu_processes() -> bool:
    """True for several processes on a machine without CUDA: Accelerate then needs ``cpu=True`` to
    join them with gloo (``accelerate launch --multi_gpu`` starts the ranks but would leave each
    one training alone)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def resolve_run_dir(config: Config, run_dir: str | Path | None, accelerator: Accelerator) -> Path:
    """``runs/{name}__{seed}__{time}`` unless given; the main process decides for everyone."""
    chosen = [str(run_dir) if run_dir else f"runs/{config.name}__{config.seed}__{time.strftime('%Y%m%d-%H%M%S')}"]
    broadcast_object_list(chosen, from_process=0)
    return Path(chosen[0])


def save_final(model, run_dir: Path, config: Config) -> Path:
    """``final/``: a ``save_pretrained`` directory, renamed into place when complete."""
    final, staging = run_dir / "final", run_dir / ".staging_final"
    shutil.rmtree(staging, ignore_errors=True)
    hf_logging.disable_progress_bar()
    model.save_pretrained(staging)
    config.save(staging / "run_config.yaml")
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return final


def shard_rows(batch_size: int, accelerator: Accelerator, grad_accum: int) -> list[slice]:
    """This process's rows of the global batch, split into its micro-batches."""
    world, rank = accelerator.num_processes, accelerator.process_index
    if batch_size % (world * grad_accum):
        raise ValueError(f"training.batch_size={batch_size} must be divisible by processes ({world}) "
                         f"x training.grad_accum ({grad_accum})")
    micro = batch_size // (world * grad_accum)
    first = rank * micro * grad_accum
    return [slice(first + i * micro, first + (i + 1) * micro) for i in range(grad_accum)]


@dataclass
class TrainResult:
    run_dir: Path  # holds config.yaml, train.log, tensorboard/, checkpoints/ and final/
    policy: torch.nn.Module  # this process's trained model


def train(config: Config, run_dir: str | Path | None = None, resume: bool = False,
          trajectories: Trajectories | None = None) -> TrainResult:
    """Trains ``config`` (on ``trajectories`` if given, else on the data its config names)."""
    t = config.training
    accelerator = Accelerator(mixed_precision=t.mixed_precision, step_scheduler_with_optimizer=False,
                              cpu=cpu_processes())
    run_dir = resolve_run_dir(config, run_dir, accelerator)
    if not resume and accelerator.is_main_process and checkpoint_dirs(run_dir):
        raise FileExistsError(f"{run_dir} already holds checkpoints: pass --resume to continue it, "
                              "or choose another --run-dir")
    logger = RunLogger(run_dir, accelerator.is_main_process)
    logger.save_config(config)

    if trajectories is None:
        with accelerator.main_process_first():  # the main process builds a missing dataset once
            trajectories = load_config_data(config.data)
    sampler = build_sampler(config.data, trajectories, config.seed)
    set_seed(config.seed)
    policy = build_policy(config, trajectories)
    optimizer, scheduler = make_optimizer(policy, config)
    model, optimizer, scheduler = accelerator.prepare(LossForward(policy), optimizer, scheduler)

    step, train_seconds = 0, 0.0  # train_seconds: time in optimizer steps only, no evaluation or saving
    if resume:
        found = checkpoint_dirs(run_dir)
        if not found:
            raise FileNotFoundError(f"--resume: no checkpoint in {run_dir / 'checkpoints'}")
        step, train_seconds = load_checkpoint(accelerator, found[-1])
        logger.info(f"resumed from {found[-1]} at step {step}")
    logger.info(f"run directory {run_dir}")
    logger.info(f"{trajectories.num_episodes} episodes, {trajectories.num_steps} steps from {trajectories.source}")
    params = sum(p.numel() for p in policy.parameters())
    logger.info(f"{type(policy).__name__}: {params:,} parameters; "
                f"{accelerator.num_processes} process(es), mixed precision {t.mixed_precision}")

    rows = shard_rows(t.batch_size, accelerator, t.grad_accum)
    model.train()
    bar = progress_bar(total=t.steps, initial=step, disable=not accelerator.is_main_process, unit="step")
    window_time, windows = 0.0, 0
    while step < t.steps:
        started = time.perf_counter()
        batch = sampler.batch(step, t.batch_size)
        total_real = int(batch.mask.sum())
        metrics = {}  # this process's share of the global batch means
        for i, part in enumerate(rows):
            micro = batch[part].to(accelerator.device)
            share = float(micro.mask.sum()) / max(total_real, 1)
            sync = accelerator.no_sync(model) if i < len(rows) - 1 else contextlib.nullcontext()
            with sync:
                with accelerator.autocast():
                    loss, micro_metrics = model(micro)
                accelerator.backward(loss * share * accelerator.num_processes)  # DDP averages over processes
            for key, value in micro_metrics.items():
                metrics[key] = metrics.get(key, 0.0) + value.float() * share
        if t.grad_clip > 0:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        elapsed = time.perf_counter() - started
        window_time, train_seconds = window_time + elapsed, train_seconds + elapsed
        windows += t.batch_size
        bar.update()
        if step % t.log_every == 0 or step == t.steps:
            values = {k: float(v) for k, v in accelerator.reduce(metrics, reduction="sum").items()}
            values.update(lr=scheduler.get_last_lr()[0], windows_per_s=windows / window_time,
                          train_seconds=train_seconds)
            if t.grad_clip > 0:
                values["grad_norm"] = float(grad_norm)
            bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}",
                            win_s=f"{values['windows_per_s']:.0f}")
            logger.scalars("train", values, step)
            window_time, windows = 0.0, 0
        if t.eval_every and step % t.eval_every == 0 and accelerator.is_main_process:
            report = evaluate_policy(policy, policy.config.evaluation, device=accelerator.device, progress=False,
                                     periodic=True)
            logger.scalars("eval", {**env_evaluator(report["env"]).scalars(report["results"]),
                                    "train_seconds": train_seconds}, step)
        if step % t.checkpoint_every == 0 or step == t.steps:
            save_checkpoint(accelerator, run_dir, step, t.keep_checkpoints, train_seconds)
    bar.close()
    if accelerator.is_main_process:
        final = save_final(policy, run_dir, config)
        logger.info(f"saved {final}")
    accelerator.wait_for_everyone()
    logger.close()
    accelerator.end_training()
    return TrainResult(run_dir=run_dir, policy=policy)
