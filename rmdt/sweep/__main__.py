"""The sweep command line: ``python -m rmdt.sweep SWEEP.yaml`` (or ``rmdt-sweep SWEEP.yaml``).

    python -m rmdt.sweep configs/sweeps/memory_suites.yaml [--out runs/memory_suites] [--tasks ...]
        [--models ...] [--seeds ...] [--cpus-per-run 1] [--gpus-per-run 0.25] [--address auto]
    python -m rmdt.sweep configs/sweeps/memory_suites.yaml --collect --merge docs/memory_suites_results.json

Trains and evaluates every run of the sweep file that has no evaluation yet (``<out>/runs/<run>/eval``),
on Ray Tune, then writes ``<out>/results.json``, ``table.md`` and ``scores.png`` over all evaluated
runs. Started again with the same command it continues where it stopped: finished runs are never
retrained, interrupted ones resume from their last checkpoint. A run that fails twice is listed in the
table with its error (the whole text in its folder's sweep_error.txt). Exit status: 0 when every run is
evaluated, 1 when one failed, 130 when interrupted (Ctrl+C) before every run had finished.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rmdt.errors import ConfigError
from rmdt.sweep.spec import load_sweep
from rmdt.sweep.table import merged, row_key, write_results
from rmdt.sweep.trainable import error_path, report_path, result_row


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rmdt.sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep", help="the sweep file (YAML: tasks, models, seeds, grid, overrides, recipe_args)")
    p.add_argument("--out", default=None, help="folder for runs/, results.json, table.md, scores.png and Tune's "
                                               "files (default runs/<sweep file name>)")
    p.add_argument("--tasks", nargs="+", default=None, help="these tasks instead of the sweep file's")
    p.add_argument("--models", nargs="+", default=None, help="these model presets instead of the sweep file's")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="these seeds instead of the sweep file's")
    p.add_argument("--cpus-per-run", type=float, default=1, help="CPUs a run holds; it trains with that many "
                                                                 "threads (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=0, help="GPUs a run holds: a fraction packs several "
                                                                 "runs on one GPU (e.g. 0.25: four)")
    p.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray (default: every core); "
                                                          "runs at once: cpus / cpus-per-run")
    p.add_argument("--address", default=None, help="join this running Ray cluster (e.g. auto, or HOST:6379) "
                                                   "instead of starting Ray here; --out must be on a filesystem "
                                                   "every node shares")
    p.add_argument("--collect", action="store_true",
                   help="train nothing: the table of the runs already evaluated (the seeds column says how many)")
    p.add_argument("--merge", nargs="+", default=[], metavar="RESULTS_JSON",
                   help="results.json of runs made elsewhere (another machine, an earlier round): their rows for "
                        "this sweep's runs join the table; a run evaluated here wins")
    return p


def train_on_ray(args, runs: list, out: Path, done: int) -> None:
    """The runs on Ray Tune: Ray started here (and shut down after) unless ``--address`` names one."""
    from rmdt.sweep import launch

    started = launch.start_ray(args.address, args.cpus)
    try:
        launch.run_with_tune(runs, out / "runs", out / "tune", args.cpus_per_run, args.gpus_per_run, done)
    finally:
        if started:
            import ray

            ray.shutdown()


def collected(runs: list, runs_dir: Path) -> tuple[list, dict]:
    """The rows of the evaluated runs, and run name -> error of the failed ones."""
    rows = [result_row(run, report_path(runs_dir / run.name)) for run in runs
            if report_path(runs_dir / run.name).is_file()]
    failed = {run.name: error_path(runs_dir / run.name).read_text() for run in runs
              if not report_path(runs_dir / run.name).is_file() and error_path(runs_dir / run.name).is_file()}
    return rows, failed


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        sweep = load_sweep(args.sweep, args.tasks, args.models, args.seeds)
    except ConfigError as error:
        raise SystemExit(f"error: {error}") from None
    out = Path(args.out or Path("runs") / Path(args.sweep).stem)
    runs_dir = out / "runs"
    pending = [] if args.collect else [run for run in sweep.runs if not report_path(runs_dir / run.name).is_file()]
    if pending:
        train_on_ray(args, pending, out, done=len(sweep.runs) - len(pending))
    rows, failed = collected(sweep.runs, runs_dir)
    stopped = [run for run in pending if not report_path(runs_dir / run.name).is_file() and run.name not in failed]
    if stopped:  # Tune ends before every run has finished or failed only when interrupted (Ctrl+C)
        print(f"interrupted: {len(stopped)} run(s) unfinished; the same command continues them", file=sys.stderr)
    extra = merged(args.merge, {row_key(r) for r in rows}, {run.key for run in sweep.runs})
    order = {run.key: i for i, run in enumerate(sweep.runs)}
    rows = sorted(rows + extra, key=lambda r: order[row_key(r)])
    if not rows and not failed:
        if stopped:
            return 130
        raise SystemExit(f"no evaluated runs in {runs_dir} for this sweep")
    print(write_results(out, rows, failed))
    print(f"results: {out / 'results.json'}\ntable:   {out / 'table.md'}\nplot:    {out / 'scores.png'}")
    return 130 if stopped else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
