"""The one trainer: any policy, any dataset, one CPU to many GPUs through Hugging Face Accelerate.

Every process draws the same global batch for a step (``sampler.batch(step)``: padded segments or
tapes of whole episodes, as ``data.batching`` says) and trains
on its own rows of it, in ``grad_accum`` micro-batches. Each micro-batch's mean loss is weighted by
its share of the global batch's real steps, so the update is the gradient of the global mean loss
whatever the number of processes or micro-batches: one process and two give the same parameters
(up to float summation order), and a resumed run continues exactly where it stopped.

Order of work: every check that can fail runs before the run folder is made (rmdt.training.preflight,
rmdt.training.resume); a non-finite loss or gradient stops the run before anything is saved from it
(rmdt.training.guard).
"""
from __future__ import annotations

import contextlib
import gc
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from transformers.utils import logging as hf_logging

from rmdt.config import Config
from rmdt.data import build_sampler, load_config_data
from rmdt.data.trajectories import Trajectories
from rmdt.envs.registry import ENVS
from rmdt.evaluation import evaluate_policy
from rmdt.models.factory import build_policy
from rmdt.training.checkpoint import (
    CheckpointError,
    checkpoint_dirs,
    load_checkpoint,
    normalize_permissions,
    save_checkpoint,
)
from rmdt.training.guard import FiniteGuard, NonFiniteError, assert_finite_parameters
from rmdt.training.logs import RunLogger, check_trackers
from rmdt.training.optim import make_optimizer
from rmdt.training.preflight import check_data, cpu_processes, resolve_run_dir, shard_rows, start_processes
from rmdt.training.resume import apply_lr, plan_resume


class LossForward(torch.nn.Module):
    """Routes ``policy.loss`` through ``forward`` so DistributedDataParallel's gradient hooks see it.

    ``compile`` (``training.compile``): the loss runs through ``torch.compile`` (the policy itself
    stays a plain module, so checkpoints and ``act`` do not change); "cuda_graphs" compiles it in
    torch's "reduce-overhead" mode, which replays the forward and backward as CUDA graphs (one launch
    for thousands of small kernels; windows have one fixed shape, so one capture serves every step).
    """

    def __init__(self, policy: torch.nn.Module, compile: bool | str = False) -> None:
        super().__init__()
        self.policy, self.graphs = policy, compile == "cuda_graphs"
        mode = "reduce-overhead" if self.graphs else None
        self.loss = torch.compile(policy.loss, mode=mode) if compile else policy.loss

    def forward(self, batch):
        if self.graphs:  # the previous step's graph outputs are consumed: their memory may be reused
            torch.compiler.cudagraph_mark_step_begin()
        return self.loss(batch)


class CollectiveTimeout(RuntimeError):
    """Another process did not reach a collective operation within ``training.collective_timeout_s``."""


LOST_PEER = ("timed out", "connection closed by peer", "connection reset by peer")  # gloo's words for it


def save_final(model, run_dir: Path, config: Config, checkpoint: Path | None) -> Path:
    """``final/``: a ``save_pretrained`` directory, renamed into place when complete."""
    final, staging = run_dir / "final", run_dir / ".staging_final"
    assert_finite_parameters(model, str(final))
    shutil.rmtree(staging, ignore_errors=True)
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(staging)
        config.save(staging / "run_config.yaml")
        normalize_permissions(staging)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    except Exception as error:  # a full disk: OSError, or a RuntimeError from the writer
        shutil.rmtree(staging, ignore_errors=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else f"{type(error).__name__}: {error}"
        raise CheckpointError(f"cannot write {final}: {reason}; the checkpoint {checkpoint} is intact") from error
    return final


@dataclass
class TrainResult:
    run_dir: Path  # holds config.yaml, train.log, tensorboard/, checkpoints/ and final/
    policy: torch.nn.Module  # this process's trained model


def train(config: Config, run_dir: str | Path | None = None, resume: bool = False,
          trajectories: Trajectories | None = None) -> TrainResult:
    """Trains ``config`` (on ``trajectories`` if given, else on the data its config names)."""
    t = config.training
    processes = start_processes(config)
    try:
        return _train(config, processes, run_dir, resume, trajectories)
    except RuntimeError as error:
        text = str(error).lower()
        ours = isinstance(error, (CheckpointError, NonFiniteError))
        if not ours and (type(error).__name__ == "DistBackendError" or any(sign in text for sign in LOST_PEER)):
            raise CollectiveTimeout(
                f"process {processes.process_index} of {processes.num_processes}: another process did not reach "
                f"a collective operation within training.collective_timeout_s={t.collective_timeout_s:g} s "
                f"or stopped (a hung or dead process); the run stopped ({str(error).splitlines()[0][:200]})") from error
        raise


def _train(config: Config, processes, run_dir, resume: bool, trajectories) -> TrainResult:
    t = config.training
    rows = shard_rows(t.batch_size, processes, t.grad_accum)
    check_trackers(t.trackers)
    run_dir = resolve_run_dir(config, run_dir)
    plan = plan_resume(config, run_dir, processes.num_processes) if resume else None  # creates nothing
    if not resume and checkpoint_dirs(run_dir):
        raise FileExistsError(f"{run_dir} already holds checkpoints: pass --resume to continue it, "
                              "or choose another --run-dir")
    if trajectories is None:
        with processes.main_process_first():  # the main process builds a missing dataset once
            trajectories = load_config_data(config.data)
    check_data(config, trajectories)
    set_seed(config.seed)
    policy = build_policy(config, trajectories)  # the model's own checks against the data's shapes
    if t.checkpoint_segments:  # rmdt only (checked by load_config)
        policy.checkpoint_segments = True

    accelerator = Accelerator(mixed_precision=t.mixed_precision, step_scheduler_with_optimizer=False,
                              cpu=cpu_processes(), log_with=t.trackers or None,
                              project_config=ProjectConfiguration(str(run_dir), str(run_dir / "tensorboard")))
    with contextlib.closing(RunLogger(run_dir, accelerator)) as logger:  # the run folder exists from here on
        optimizer, scheduler = make_optimizer(policy, config, plan.schedule if plan else [[0, t.steps]])
        run = Run(config, run_dir, accelerator, logger, policy,
                  *accelerator.prepare(LossForward(policy, t.compile), optimizer, scheduler),
                  build_sampler(config.data, trajectories, config.seed), rows,
                  plan.schedule if plan else [[0, t.steps]])
        if plan:
            restore(run, plan)
        logger.save_config(config)  # after a resume has loaded, so a refused or failed one leaves it as it was
        logger.start_trackers(config)
        logger.info(f"run directory {run_dir}")
        logger.info(f"{trajectories.num_episodes} episodes, {trajectories.num_steps} steps from {trajectories.source}")
        params = sum(p.numel() for p in policy.parameters())
        logger.info(f"{type(policy).__name__}: {params:,} parameters; "
                    f"{accelerator.num_processes} process(es), mixed precision {t.mixed_precision}")
        try:
            fit(run)
        finally:
            release_prepared(run)
        accelerator.wait_for_everyone()  # every process has freed its wrapper before the group goes
    return TrainResult(run_dir=run_dir, policy=policy)


def release_prepared(run: Run) -> None:
    """Frees the prepared model, optimizer and scheduler before ``end_training`` destroys the process
    group. Their DistributedDataParallel wrapper holds the group: freed later, by a process whose peers
    have already exited, gloo's teardown waits for them forever."""
    run.model = run.optimizer = run.scheduler = None
    run.accelerator.free_memory()
    gc.collect()


@dataclass
class Run:
    """What the training loop works with, made by ``train``."""
    config: Config
    run_dir: Path
    accelerator: Accelerator
    logger: RunLogger
    policy: torch.nn.Module
    model: torch.nn.Module  # the prepared LossForward(policy)
    optimizer: torch.optim.Optimizer
    scheduler: object
    sampler: object
    rows: list  # this process's micro-batch rows of the global batch
    schedule: list  # the schedule history (rmdt.training.optim)
    step: int = 0
    train_seconds: float = 0.0  # time in optimizer steps only, no evaluation or saving
    checkpoint: Path | None = None  # the newest checkpoint written or resumed from


def restore(run: Run, plan) -> None:
    """Loads the planned checkpoint and applies the accepted changes (rmdt.training.resume)."""
    for reason in plan.skipped:
        run.logger.info(f"not resuming from a damaged checkpoint: {reason}")
    load_checkpoint(run.accelerator, plan.checkpoint)
    if any(change.startswith("training.lr ") for change in plan.changes):
        apply_lr(run.optimizer, run.scheduler.scheduler, run.config.training.lr)
    run.step, run.train_seconds, run.checkpoint = plan.step, plan.train_seconds, plan.checkpoint
    run.logger.info(f"resumed from {plan.checkpoint} at step {plan.step}"
                    + (f"; applied {', '.join(plan.changes)}" if plan.changes else ""))


def fit(run: Run) -> None:
    """Trains from ``run.step`` to ``training.steps``, logging, evaluating and saving on the way."""
    t, accelerator, logger, model, optimizer, scheduler = (run.config.training, run.accelerator, run.logger,
                                                           run.model, run.optimizer, run.scheduler)
    policy, rows, step, train_seconds = run.policy, run.rows, run.step, run.train_seconds
    guard = FiniteGuard(accelerator, t.max_bad_steps, step, check_grad_norm=t.mixed_precision != "fp16")
    model.train()
    bar = logger.progress(total=t.steps, initial=step)
    window_time, windows = 0.0, 0
    while step < t.steps:
        started = time.perf_counter()
        batch = run.sampler.batch(step, t.batch_size)
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
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), t.grad_clip if t.grad_clip > 0 else float("inf"))
        step += 1
        skip = guard.observe(step, metrics["loss"], grad_norm)
        if not skip or t.mixed_precision == "fp16":  # fp16: the gradient scaler skips non-finite steps itself
            optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        elapsed = time.perf_counter() - started
        window_time, train_seconds = window_time + elapsed, train_seconds + elapsed
        windows += t.batch_size
        bar.update()
        log_due = step % t.log_every == 0 or step == t.steps
        eval_due = bool(t.eval_every) and step % t.eval_every == 0
        save_due = step % t.checkpoint_every == 0 or step == t.steps
        if log_due or eval_due or save_due:
            guard.check()  # before anything is logged, evaluated or saved from this step's weights
        if skip:
            logger.info(f"step {step}: skipped (loss or gradient norm not finite; "
                        f"{len(guard.skipped)} of training.max_bad_steps={t.max_bad_steps})")
        if log_due:
            values = {k: float(v) for k, v in accelerator.reduce(metrics, reduction="sum").items()}
            values.update(lr=scheduler.get_last_lr()[0], windows_per_s=windows / window_time,
                          train_seconds=train_seconds, grad_norm=float(grad_norm))
            bar.set_postfix(loss=f"{values['loss']:.4f}", lr=f"{values['lr']:.2e}",
                            win_s=f"{values['windows_per_s']:.0f}")
            logger.scalars("train", values, step)
            window_time, windows = 0.0, 0
        if eval_due and accelerator.is_main_process:
            report = evaluate_policy(policy, policy.config.evaluation, device=accelerator.device, progress=False,
                                     periodic=True)
            logger.scalars("eval", {**ENVS.evaluator(report["env"]).scalars(report["results"]),
                                    "train_seconds": train_seconds}, step)
        if save_due:
            assert_finite_parameters(policy, f"the checkpoint of step {step}")
            run.checkpoint = save_checkpoint(accelerator, run.run_dir, step, t.keep_checkpoints,
                                             {"train_seconds": train_seconds, "schedule": run.schedule},
                                             policy.config)
    guard.check()
    if accelerator.is_main_process:
        final = save_final(policy, run.run_dir, run.config, run.checkpoint)
        logger.info(f"saved {final}")
    accelerator.wait_for_everyone()
