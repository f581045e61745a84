"""One run of a sweep, as Ray Tune's function trainable calls it and as a plain call: train unless
evaluated, evaluate, return the results.json row.

A run resumes from its own rmdt checkpoints whenever its folder holds some: a sweep killed and
started again, or a run whose Ray worker died and that Tune retries, continues exactly where its last
checkpoint stopped (rmdt's resume is exact), so its numbers are those of an uninterrupted run.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from rmdt.sweep.spec import Run


def report_path(run_dir: Path) -> Path:
    """Where a run's evaluation is: a run is finished once it exists."""
    return Path(run_dir) / "eval" / "results.json"


def error_path(run_dir: Path) -> Path:
    """Where the sweep keeps why a run's last attempt failed (rmdt.sweep.launch writes it)."""
    return Path(run_dir) / "sweep_error.txt"


def result_row(run: Run, report: Path) -> dict:
    """The results.json row of an evaluated run."""
    (result,) = json.loads(Path(report).read_text())["results"]
    row = {"task": run.task, "model": run.model, "seed": run.seed}
    if run.grid:
        row["grid"] = dict(run.grid)
    row.update({"return": result["mean_return"], "normalised": result.get("normalised_score"),
                "ref_min": result.get("ref_min_score"), "ref_max": result.get("ref_max_score")})
    return row


def run_one(run: Run, run_dir: Path, device: str = "cpu") -> dict:
    """Trains ``run`` into ``run_dir`` (resuming its checkpoints), evaluates it, returns its row; a run
    already evaluated is only read."""
    from rmdt.config import load_config
    from rmdt.evaluation import evaluate_checkpoint
    from rmdt.training import train
    from rmdt.training.checkpoint import checkpoint_dirs

    run_dir = Path(run_dir)
    report = report_path(run_dir)
    if not report.is_file():
        config = load_config(run.config, list(run.overrides))
        train(config, run_dir=run_dir, resume=bool(checkpoint_dirs(run_dir)))
        report = evaluate_checkpoint(run_dir, device=device)
    return result_row(run, report)


def tune_trainable(params: dict, runs: dict, runs_dir: str) -> None:
    """Ray Tune's function trainable (``runs``, run name -> Run, and ``runs_dir`` bound by
    ``tune.with_parameters``): ``params`` names the ``run`` and the ``threads`` and ``gpus`` it was
    given; reports its row as the trial's one result."""
    import torch
    from ray import tune

    if not params["gpus"]:  # Ray hides GPUs only from runs that ask for some: keep this one off them
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    torch.set_num_threads(params["threads"])
    device = "cuda" if params["gpus"] and torch.cuda.is_available() else "cpu"
    tune.report(run_one(runs[params["run"]], Path(runs_dir) / params["run"], device))
