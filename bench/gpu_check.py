"""One-command accelerator check: every model kind, T-Maze and Atari, fp32 / bf16 / fp16, compile on/off.

    PYTHONPATH=. python3 bench/gpu_check.py --out gpu_check.json   # on a GPU: the rows, under 8 minutes, then the sweep
    PYTHONPATH=. python3 bench/gpu_check.py --no-rows --sweep       # the sweep alone
    python bench/gpu_check.py --device cpu --tiny                    # seconds; the test suite runs it

GPU time is lent for minutes, so this script must run the first time: data is made on the spot in
memory (T-Maze oracle episodes from rmdt's own env, a synthetic Atari frame store of random 84x84
frames in rmdt's store format), nothing is downloaded, and minari / ale_py are never imported.
For RMDT, DT and every registered model kind (``rmdt.models.registry.MODELS``) on both datasets, at
the sizes of the repository's configs (``configs/tmaze/*.yaml``, ``configs/atari/breakout_*.yaml``),
it trains a few dozen steps through Accelerate (mixed precision and, for fp16, its gradient scaler) on
the same batches from the same initial weights in each precision, and reports:

- losses finite at every step, and bf16 / fp16 following fp32: the first step's loss (same weights,
  same batch) within ``FIRST_TOL`` and the mean of the last quarter of steps within ``TAIL_TOL``
  (relative, plus 0.02 absolute) of fp32's;
- warm-up seconds (the first 3 steps: compilation in compiled rows), then the step time, windows/s,
  tokens/s (positions the model computes: R, o, a per step plus read and write memory for RMDT;
  one per step for recurrent models), matmul/conv FLOPs per step from
  ``torch.utils.flop_counter`` and the model FLOP utilisation against the device's dense peak for
  that precision (``PEAK_TFLOPS``; fp32 rows run with TF32 off, so their peak is the FP32 one);
- ``act`` steps/s (environments x steps per second, policy only, no environment), peak device memory;
- one row per (env, model) with ``torch.compile`` on (after all the eager rows, RMDT first);
- on CUDA, RMDT on both datasets in fp32 and bf16 with ``training.compile=cuda_graphs``
  (``torch.compile`` in "reduce-overhead" mode: forward and backward replayed as CUDA graphs), the
  rows the launch-bound goals are about: the T-Maze step within ``TMAZE_STEP_GOAL_MS``, the Atari
  step in bf16 at ``ATARI_MFU_GOAL`` model FLOP utilisation or more (the table's last column).

No row starts after ``--budget`` seconds (it says so), so the rows end within about budget + one row.
A row that fails is recorded with its error and the script goes on; the exit status is 1 if any
row failed or any check did not hold. One table is printed; ``--out`` gets the JSON, rewritten
after every row so that a killed run leaves what it measured.

Then (on a GPU, or with ``--sweep``) the POPGym Easy table, every model of the memory-suite sweep on
its nine POPGym tasks with 3 seeds (243 runs as ``configs/sweeps/memory_suites.yaml`` sets them), as
one Ray sweep (``rmdt.sweep``) that packs the GPU: each run holds one CPU and ``--sweep-gpus-per-run``
of the GPU (default: one core's share, so every core trains a run on it). It prints the wall time
against the goal of ``SWEEP_GOAL_S``; the JSON gets it with the sweep's table, and a failed run makes
the exit status 1. Datasets are built on the spot by the tasks' recipes; run folders go to
``--sweep-out``, and a sweep started again there resumes.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from rmdt.atomic import write_text
from rmdt.config import load_config
from rmdt.data import build_sampler
from rmdt.data.synthetic import random_frame_store, tmaze_oracle
from rmdt.evaluation.dataset_acting import DatasetActing
from rmdt.models.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]

FIRST_TOL = {"bf16": 0.03, "fp16": 0.01}  # relative gap of the first step's loss to fp32
TAIL_TOL = 0.15  # relative gap of the mean loss over the last quarter of the steps to fp32 (+ 0.02 absolute)
# Dense peak TFLOP/s by device name (first match wins; more specific names first). "bf16" also serves
# fp16 (the same tensor-core rate on these parts); "fp32" is the non-tensor-core FP32 rate (TF32 off).
PEAK_TFLOPS = [("H100 PCIe", {"bf16": 756.0, "fp32": 51.0}), ("H200", {"bf16": 989.0, "fp32": 67.0}),
               ("H100", {"bf16": 989.0, "fp32": 67.0}), ("GH200", {"bf16": 989.0, "fp32": 67.0}),
               ("A100", {"bf16": 312.0, "fp32": 19.5}), ("L40S", {"bf16": 362.0, "fp32": 91.6}),
               ("L4", {"bf16": 121.0, "fp32": 30.3}), ("A10", {"bf16": 125.0, "fp32": 31.2}),
               ("4090", {"bf16": 165.2, "fp32": 82.6})]
TINY = ["data.context_len=4", "data.num_segments=2", "data.tape_len=8", "model.d_model=16", "model.n_layers=1",
        "model.n_heads=2", "model.memory_size=4", "model.context_size=2", "training.batch_size=4",
        "training.warmup_steps=1"]
DISTINCT_BATCHES = 8  # batches held on the device and cycled (Atari batches are ~0.3 GB each)
TMAZE_STEP_GOAL_MS, ATARI_MFU_GOAL = 5.0, 0.15  # the cuda_graphs rows' goals (T-Maze RMDT; Atari RMDT bf16)
SWEEP = ROOT / "configs" / "sweeps" / "memory_suites.yaml"
SWEEP_GOAL_S = 600.0  # the POPGym Easy table on one GPU within 10 minutes


def config_for(env: str, kind: str, tiny: bool, extra: list[str] = ()):
    """The repository's config of that (env, model), else its rmdt config (DT: no memory; recurrent
    kinds: the env's FFM config with the kind swapped), made tiny if asked."""
    folder, prefix = ("tmaze", "") if env == "tmaze" else ("atari", "breakout_")
    name = {"dt": "dt", "rmdt": "rmdt"}.get(kind, kind)
    path = ROOT / "configs" / folder / f"{prefix}{name}.yaml"
    overrides = []
    if not path.is_file():
        path = ROOT / "configs" / folder / f"{prefix}{'rmdt' if kind in ('rmdt', 'dt') else 'ffm'}.yaml"
        overrides = ["model.memory_tokens=0"] if kind == "dt" else [f"model.kind={kind}"]
    fields = MODELS["rmdt" if kind == "dt" else kind].fields
    # A short warm-up, so that a few dozen steps move the weights and precisions can drift apart.
    overrides += [o for o in TINY if not o.startswith("model.") or o.split("=")[0][6:] in fields] if tiny \
        else ["training.warmup_steps=5"]
    config = load_config(path, overrides + list(extra) + ["data.recipe=null", "data.dataset=memory"])
    if tiny and "memory_tokens" in fields:
        config.model.memory_tokens = min(config.model.memory_tokens, 2)
    return config


def tokens_per_row(config) -> int:
    """Positions the model computes per batch row (see the module docstring)."""
    d, m = config.data, config.model
    if m.kind != "rmdt":
        return d.tape_len if d.batching == "tape" else d.context_len * d.num_segments
    return d.num_segments * (3 * d.context_len + 2 * m.memory_tokens)


def peak_tflops(device: torch.device, precision: str, override: float | None) -> tuple[float | None, str]:
    if override:
        return override, "--peak-tflops"
    if device.type != "cuda":
        return None, "no peak table for CPUs (pass --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    kind = "fp32" if precision == "fp32" else "bf16"
    for key, peaks in PEAK_TFLOPS:
        if key in name:
            return peaks[kind], f"{key} dense {'fp32' if kind == 'fp32' else 'bf16/fp16'}"
    return None, f"{name} not in PEAK_TFLOPS"


def make_accelerator(precision: str, device: torch.device):
    """A fresh Accelerator: its state is a process-wide singleton that refuses a second precision."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    return Accelerator(mixed_precision={"fp32": "no"}.get(precision, precision), cpu=device.type == "cpu",
                       step_scheduler_with_optimizer=False)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(policy, batch) -> float:
    """Matmul and convolution FLOPs of one forward and backward pass (eager, fp32)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        loss, _ = policy.loss(batch)
        loss.backward()
    policy.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def act_rate(policy, trajectories, device, accelerator, envs: int, steps: int) -> float:
    """Environments x steps per second of ``act`` on dataset observations (no environment stepping),
    after two warm-up steps, inside the row's autocast."""
    with accelerator.autocast():
        return envs * steps / DatasetActing(policy, trajectories, envs, device).run(steps, warmup=2)


def device_batches(config, trajectories, device, count: int) -> list:
    """Batches 0..count-1 of the run's sampler, on the device: step times measure the model, not the
    loader (bench/perf/loader.py measures that)."""
    sampler = build_sampler(dataclasses.replace(config.data, prefetch=0), trajectories, config.seed)
    return [sampler.batch(s, config.training.batch_size).to(device) for s in range(count)]


def train_row(config, trajectories, batches: list, precision: str, device, steps: int,
              compile_backend: str | None, act_envs: int, act_steps: int, want_flops: bool,
              graphs: bool = False) -> dict:
    """Trains ``steps`` steps from the seed's initial weights, cycling through ``batches``; returns the row."""
    from accelerate.utils import set_seed

    from rmdt.models.factory import build_policy
    from rmdt.training.optim import make_optimizer
    from rmdt.training.trainer import LossForward

    accelerator = make_accelerator(precision, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        resident = torch.cuda.memory_allocated(device)  # the cached batches, not counted as training memory
    set_seed(config.seed)
    policy = build_policy(config, trajectories).to(device)
    row = {"params": sum(p.numel() for p in policy.parameters()), "tokens_per_step": tokens_per_row(config) *
           config.training.batch_size, "windows_per_step": config.training.batch_size}
    if want_flops:
        row["flops_per_step"] = count_flops(policy, batches[0])
    set_seed(config.seed)  # every precision trains from the same random state (dropout, memory replay)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # the FLOP-counting pass is not training
    optimizer, scheduler = make_optimizer(policy, config)
    if compile_backend:
        torch._dynamo.reset()  # each row compiles afresh, within dynamo's recompilation limit
    # graphs: the trainer's own training.compile=cuda_graphs path
    module = LossForward(policy, compile="cuda_graphs") if graphs else LossForward(policy)
    if compile_backend and not graphs:
        module = torch.compile(module, backend=compile_backend)
    model, optimizer, scheduler = accelerator.prepare(module, optimizer, scheduler)
    warmup = min(3, steps - 1)
    losses = []
    started = time.perf_counter()
    for s in range(steps):
        if s == warmup:
            sync(device)
            row["warmup_seconds"] = time.perf_counter() - started
            started = time.perf_counter()
        with accelerator.autocast():
            loss, _ = model(batches[s % len(batches)])
        accelerator.backward(loss)
        if config.training.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.training.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach().clone())  # a CUDA graph's outputs are overwritten by its next replay
    sync(device)
    seconds = (time.perf_counter() - started) / (steps - warmup)
    row.update(step_ms=1e3 * seconds, windows_per_s=row["windows_per_step"] / seconds,
               tokens_per_s=row["tokens_per_step"] / seconds, losses=[float(x) for x in losses])
    if device.type == "cuda":
        row["peak_memory_gb"] = (torch.cuda.max_memory_allocated(device) - resident) / 2**30
    if act_steps:
        row["act_steps_per_s"] = act_rate(policy, trajectories, device, accelerator, act_envs, act_steps)
    return row


def check(row: dict, reference: dict | None) -> list[str]:
    """What is wrong with a row's losses: non-finite, or too far from fp32's (same batches, same start)."""
    losses = row["losses"]
    if not all(math.isfinite(x) for x in losses):
        return [f"non-finite loss at step {next(i for i, x in enumerate(losses) if not math.isfinite(x))}"]
    if reference is None or row["precision"] == "fp32" and not row["compile"]:
        return []
    problems, ref = [], reference["losses"]
    first_tol = FIRST_TOL.get(row["precision"], 1e-3)
    if abs(losses[0] - ref[0]) > first_tol * abs(ref[0]) + 1e-4:
        problems.append(f"first loss {losses[0]:.4f} vs fp32 {ref[0]:.4f} (tolerance {first_tol:.0%})")
    tail = max(1, len(losses) // 4)
    mine, theirs = float(np.mean(losses[-tail:])), float(np.mean(ref[-tail:]))
    if abs(mine - theirs) > TAIL_TOL * abs(theirs) + 0.02:
        problems.append(f"last-{tail} mean loss {mine:.4f} vs fp32 {theirs:.4f} (tolerance {TAIL_TOL:.0%} + 0.02)")
    return problems


def fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def print_table(rows: list[dict]) -> None:
    head = ["env", "model", "prec", "compile", "params", "warm-up s", "ms/step", "windows/s", "tokens/s", "TFLOP/s",
            "MFU", "act steps/s", "peak GB", "loss first->last", "check"]
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append([r["env"], r["model"], r["precision"], str(r["compile"]), *[""] * (len(head) - 5),
                          ("" if r["error"].startswith("skipped") else "ERROR ") + r["error"].splitlines()[-1][:60]])
            continue
        loss = f"{r['losses'][0]:.3f}->{r['losses'][-1]:.3f}"
        lines.append([r["env"], r["model"], r["precision"], str(r["compile"]), f"{r['params']:,}",
                      fmt(r["warmup_seconds"], ".1f"), fmt(r["step_ms"], ".1f"), fmt(r["windows_per_s"], ",.0f"),
                      fmt(r["tokens_per_s"], ",.0f"), fmt(r.get("tflops"), ".2f"), fmt(r.get("mfu"), ".1%"),
                      fmt(r.get("act_steps_per_s"), ",.0f"),
                      fmt(r.get("peak_memory_gb"), ".2f"), loss, "; ".join(r["problems"]) or "ok"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def goal_lines(rows: list[dict]) -> list[str]:
    """The cuda_graphs rows against their goals (see the module docstring)."""
    lines = []
    for r in rows:
        if r["compile"] != "cuda_graphs" or "error" in r:
            continue
        if r["env"] == "tmaze":
            lines.append(f"goal: T-Maze RMDT {r['precision']} step {r['step_ms']:.2f} ms "
                         f"({'within' if r['step_ms'] <= TMAZE_STEP_GOAL_MS else 'over'} {TMAZE_STEP_GOAL_MS:g} ms)")
        elif r["precision"] == "bf16" and r.get("mfu") is not None:
            lines.append(f"goal: Atari RMDT bf16 MFU {r['mfu']:.1%} "
                         f"({'at or above' if r['mfu'] >= ATARI_MFU_GOAL else 'below'} {ATARI_MFU_GOAL:.0%})")
    return lines


def sweep_args(args) -> list[str]:
    """The sweep's command line (``python -m rmdt.sweep``): the memory-suite sweep's POPGym tasks."""
    from rmdt.sweep import load_sweep

    tasks = [task for task in load_sweep(SWEEP).tasks if task.startswith("popgym/")]
    share = args.sweep_gpus_per_run or 1 / (os.cpu_count() or 1)
    return [str(SWEEP), "--tasks", *tasks, "--seeds", *map(str, args.sweep_seeds), "--out", args.sweep_out,
            "--cpus-per-run", "1", "--gpus-per-run", f"{share:.4g}"]


def sweep_check(args) -> dict:
    """Runs the POPGym Easy sweep and times it (see the module docstring)."""
    from rmdt.sweep import load_sweep
    from rmdt.sweep.__main__ import main as sweep_main
    from rmdt.sweep.__main__ import parser as sweep_parser

    argv = sweep_args(args)
    parsed = sweep_parser().parse_args(argv)
    runs = len(load_sweep(parsed.sweep, parsed.tasks, parsed.models, parsed.seeds).runs)
    print(f"sweep: {runs} runs, {parsed.gpus_per_run:g} GPU and {parsed.cpus_per_run:g} CPU each", flush=True)
    begin = time.perf_counter()
    status = sweep_main(argv)
    seconds = time.perf_counter() - begin
    verdict = "within" if seconds <= SWEEP_GOAL_S else "over"
    print(f"sweep: {runs} runs in {seconds:.0f} s wall ({seconds / 60:.1f} min), {verdict} the goal of "
          f"{SWEEP_GOAL_S:.0f} s ({SWEEP_GOAL_S / 60:.0f} min); {runs / seconds * 3600:.0f} runs per hour")
    out = Path(parsed.out)
    return {"command": "python -m rmdt.sweep " + " ".join(argv), "runs": runs, "seconds": seconds,
            "goal_s": SWEEP_GOAL_S, "within_goal": seconds <= SWEEP_GOAL_S, "failed": status != 0,
            "table": (out / "table.md").read_text() if (out / "table.md").is_file() else None}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    parser.add_argument("--tiny", action="store_true", help="tiny models and data, a few steps (the CPU test)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per row (default 40, tiny 4)")
    parser.add_argument("--envs", nargs="+", default=["tmaze", "atari"], choices=["tmaze", "atari"])
    parser.add_argument("--models", nargs="+", default=None, help="model kinds (default: dt and every registered kind)")
    parser.add_argument("--precisions", nargs="+", default=None, choices=["fp32", "bf16", "fp16"],
                        help="default fp32 bf16 fp16 (CPU: fp32 bf16: Accelerate has no fp16 autocast on CPUs)")
    parser.add_argument("--compile-precision", default=None,
                        help="precision of the compiled rows (default bf16; CPU fp32)")
    parser.add_argument("--compile-backend", default=None, help="torch.compile backend (default inductor; tiny: eager)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--budget", type=float, default=360.0, help="seconds after which no further row starts")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU, overriding the table")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides for every row, e.g. training.batch_size=32")
    parser.add_argument("--out", default=None, help="write the JSON report here")
    parser.add_argument("--rows", action=argparse.BooleanOptionalAction, default=True,
                        help="the per-model rows (default on; --no-rows: the sweep only)")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=None,
                        help="the POPGym Easy sweep on Ray (default: on a GPU unless --tiny)")
    parser.add_argument("--sweep-gpus-per-run", type=float, default=None,
                        help="GPU share of each sweep run (default 1 / CPU cores)")
    parser.add_argument("--sweep-seeds", type=int, nargs="+", default=[0, 1, 2], help="the sweep's seeds")
    parser.add_argument("--sweep-out", default="runs/gpu_check_sweep", help="the sweep's folder")
    args = parser.parse_args(argv)
    if args.sweep is None:
        args.sweep = args.device.startswith("cuda") and not args.tiny
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    begin = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 rows are measured as fp32, against the FP32 peak
        torch.backends.cudnn.allow_tf32 = False
    steps = max(2, args.steps or (4 if args.tiny else 40))
    models = args.models or ["rmdt", "dt", *[k for k in MODELS if k != "rmdt"]]
    precisions = args.precisions or (["fp32", "bf16"] if device.type == "cpu" else ["fp32", "bf16", "fp16"])
    compile_precision = args.compile_precision or ("fp32" if device.type == "cpu" else "bf16")
    backend = args.compile_backend or ("eager" if args.tiny else "inductor")
    act_envs, act_steps = (4, 3) if args.tiny else (100, 50)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {device} ({device_name}), torch {torch.__version__}, {steps} steps per row, "
          f"models {', '.join(models)}")
    meta = {"device": str(device), "device_name": device_name, "torch": torch.__version__, "steps": steps,
            "tiny": args.tiny, "first_tolerance": FIRST_TOL, "tail_tolerance": TAIL_TOL, "tf32": False,
            "compile_backend": backend}
    rows, data = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        envs = args.envs if args.rows else []
        if "tmaze" in envs:
            data["tmaze"] = tmaze_oracle(40 if args.tiny else 2000, 10 if args.tiny else 88)
        if "atari" in envs:  # episodes of 20-40 (tiny) or 200-400 steps
            length = 40 if args.tiny else 400
            lengths = np.random.default_rng(0).integers(length // 2, length + 1, size=3 if args.tiny else 24)
            data["atari"] = random_frame_store(Path(tmp) / "store", lengths)
        plan = [(env, kind, p, False) for env in envs for kind in models for p in precisions]
        if envs and not args.no_compile and device.type == "cuda":  # the launch-bound goals' rows first
            plan += [(env, "rmdt", p, "cuda_graphs") for env in envs for p in ("fp32", "bf16")]
        if envs and not args.no_compile:  # most wanted first, while the budget lasts (tiny: RMDT only)
            plan += [(env, kind, compile_precision, True) for kind in (models[:1] if args.tiny else models)
                     for env in args.envs]
        references, flops, cached = {}, {}, {}
        for env, kind, precision, compiled in plan:
            row = {"env": env, "model": kind, "precision": precision, "compile": compiled}
            if time.perf_counter() - begin > args.budget:
                row["error"] = f"skipped: the time budget of {args.budget:.0f} s is spent"
                rows.append(row)
                continue
            try:
                config = config_for(env, kind, args.tiny, args.set)
                if (env, kind) not in cached:
                    cached.clear()  # one set of batches on the device at a time
                    cached[(env, kind)] = device_batches(config, data[env], device, min(steps, DISTINCT_BATCHES))
                row.update(train_row(config, data[env], cached[(env, kind)], precision, device, steps,
                                     backend if compiled else None,
                                     act_envs, 0 if compiled else act_steps, want_flops=(env, kind) not in flops,
                                     graphs=compiled == "cuda_graphs"))
                flops.setdefault((env, kind), row.pop("flops_per_step", None))
                row["flops_per_step"] = flops[(env, kind)]
                peak, peak_source = peak_tflops(device, precision, args.peak_tflops)
                row["tflops"] = row["flops_per_step"] / row["step_ms"] * 1e-9
                row["mfu"] = row["tflops"] / peak if peak else None
                row["peak_source"] = peak_source
                if precision == "fp32" and not compiled:
                    references[(env, kind)] = row
                row["problems"] = check(row, references.get((env, kind)))
            except Exception as error:  # recorded, and the next row runs: GPU minutes are scarce
                row["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
                row["traceback"] = traceback.format_exc()
                print(row["traceback"], file=sys.stderr)
            rows.append(row)
            if args.out:
                write_report(args.out, rows, meta, begin)
            print(f"  {env} {kind} {precision}{f' compiled ({compiled})' if compiled else ''}:",
                  (row.get("error") or f"{row['step_ms']:.1f} ms/step"), flush=True)
    if rows:
        print_table(rows)
        for line in goal_lines(rows):
            print(line)
    if args.sweep:
        try:
            meta["sweep"] = sweep_check(args)
        except (Exception, SystemExit) as error:  # the rows' report is still written
            meta["sweep"] = {"failed": True, "error": "".join(traceback.format_exception_only(type(error), error))}
            print(traceback.format_exc(), file=sys.stderr)
    report = write_report(args.out, rows, meta, begin)
    if args.out:
        print(f"wrote {args.out}")
    print(f"{len(rows)} rows, {report['failed']} failed, {report['seconds']:.0f} s")
    return 1 if report["failed"] else 0


def write_report(path: str | None, rows: list[dict], meta: dict, begin: float) -> dict:
    failed = [r for r in rows if r.get("problems") or "error" in r and not r["error"].startswith("skipped")]
    failed += [meta["sweep"]] if meta.get("sweep", {}).get("failed") else []
    report = {**meta, "seconds": time.perf_counter() - begin, "failed": len(failed), "rows": rows}
    if path:
        write_text(path, json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    sys.exit(main())
