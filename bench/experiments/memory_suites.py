"""One table of every model on every memory task: POPGym and MiniGrid-Memory, trained on the same
oracle data by the same trainer and evaluated by the same gymnasium evaluator.

    python bench/experiments/memory_suites.py [--out runs/memory_suites] [--seeds 0 1 2] [--tasks ...] \
        [--models ...] [--quick]

For each task (a base config ``configs/popgym/<task>.yaml``, ``configs/minigrid/memory.yaml``), model
(a preset of ``rmdt.presets``, composed as ``model=NAME``) and seed it trains (``seed=S``) and
evaluates, skipping runs whose evaluation is already on disk, so an interrupted table resumes.
Writes ``results.json`` (every run's raw and normalised return), ``table.md`` (per task and model:
mean and min-max over seeds of the raw return and of the normalised score
``100 * (return - random) / (oracle - random)``, with the oracle and random references; then the
normalised scores as a task x model grid with POPGym's mean over its tasks per model, the aggregate
the POPGym and memoroid papers report) and ``scores.png``.
``--collect`` trains nothing and tabulates the runs already evaluated (a partial table).
``--quick`` runs a tiny setting (small data, a few steps, one seed) that only checks the pipeline.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
POPGYM_TASKS = ("repeat_first_easy", "repeat_previous_easy", "autoencode_easy", "count_recall_easy",
                "position_only_cartpole_easy", "higher_lower_easy", "battleship_easy", "mine_sweeper_easy",
                "labyrinth_escape_easy")
TASKS = tuple(f"popgym/{t}" for t in POPGYM_TASKS) + ("minigrid/memory",)
# presets of the table (rmdt.presets); rmdt_replay asks whether the time-warp augmentation that makes
# T-Maze memory hold helps where rewriting a segment is not a no-op
MODELS = ("rmdt", "rmdt_replay", "dt", "dt_nk", "ffm", "linear_attention", "lru", "gru", "lstm")
QUICK = ["training.steps=10", "training.warmup_steps=2", "training.log_every=5", "evaluation.episodes=6"]


def config_path(task: str) -> Path:
    return ROOT / "configs" / f"{task}.yaml"


def quick_data(config) -> str:
    """The config's recipe arguments with a small dataset (quick mode)."""
    args = {**config.data.recipe_args, "episodes": 40}
    return "data.recipe_args={" + ", ".join(f"{k}: {v}" for k, v in args.items()) + "}"


def run_one(task: str, model: str, seed: int, out: Path, quick: bool, train_missing: bool = True) -> dict | None:
    """Trains and evaluates one (task, model, seed) unless its report exists; returns the result row
    (None for a missing run when ``train_missing`` is off)."""
    from rmdt.config import load_config
    from rmdt.evaluation import evaluate_checkpoint
    from rmdt.training import train

    run = out / "runs" / f"{task.replace('/', '_')}_{model}__{seed}"
    report = run / "eval" / "results.json"
    if not report.is_file():
        if not train_missing:
            return None
        overrides = [f"model={model}", f"seed={seed}"]
        if quick:
            overrides += [*QUICK, quick_data(load_config(config_path(task), overrides))]
        config = load_config(config_path(task), overrides)
        train(config, run_dir=run)
        report = evaluate_checkpoint(run)
    row, = json.loads(report.read_text())["results"]
    return {"task": task, "model": model, "seed": seed, "return": row["mean_return"],
            "normalised": row.get("normalised_score"), "ref_min": row.get("ref_min_score"),
            "ref_max": row.get("ref_max_score")}


def merged(paths, have: set, tasks, models, seeds) -> list[dict]:
    """Rows of earlier results.json files for the selected tasks, models and seeds not in ``have``."""
    rows = {}
    for path in paths:
        try:
            found = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise SystemExit(f"--merge {path}: cannot read a results.json ({error})") from None
        for row in found:
            key = (row["task"], row["model"], row["seed"])
            if key not in have and row["task"] in tasks and row["model"] in models and row["seed"] in seeds:
                rows[key] = row
    return list(rows.values())


def spread(values) -> str:
    values = np.asarray([v for v in values if v is not None], float)
    if not len(values):
        return "-"
    return f"{values.mean():.2f} ({values.min():.2f} to {values.max():.2f})"


def table(rows: list[dict]) -> str:
    """Markdown: one line per task and model (raw and normalised), then the normalised scores as a task x
    model grid whose last line is POPGym's mean over its tasks per model (each task's mean over seeds)."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    models = sorted({r["model"] for r in rows}, key=lambda m: (MODELS + (m,)).index(m))
    cell = {(t, m): [r for r in rows if r["task"] == t and r["model"] == m] for t in tasks for m in models}
    lines = ["| task | model | seeds | return | normalised | oracle | random |", "|---|---|---|---|---|---|---|"]
    for (task, model), runs in cell.items():
        if runs:
            lines.append(f"| {task} | {model} | {len(runs)} | {spread(r['return'] for r in runs)} | "
                         f"{spread(r['normalised'] for r in runs)} | {runs[0]['ref_max']:.3f} | "
                         f"{runs[0]['ref_min']:.3f} |")
    lines += ["", "| normalised, mean (min to max) over seeds | " + " | ".join(models) + " |",
              "|---" * (len(models) + 1) + "|"]
    for task in tasks:
        cells = [grid_cell([r["normalised"] for r in cell[task, m]]) for m in models]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    popgym = [t for t in tasks if t.startswith("popgym/")]
    if popgym:
        means = [[np.mean([r["normalised"] for r in cell[t, m]]) for t in popgym if cell[t, m]] for m in models]
        lines.append("| POPGym mean over tasks | " + " | ".join(
            f"{np.mean(m):.1f} ({len(m)} task{'s' * (len(m) > 1)})" if m else "-" for m in means) + " |")
    return "\n".join(lines) + "\n"


def grid_cell(scores: list) -> str:
    scores = [s for s in scores if s is not None]
    if not scores:
        return "-"
    low, high = f"{min(scores):.1f}", f"{max(scores):.1f}"
    return f"{np.mean(scores):.1f}" + (f" ({low} to {high})" if low != high else "")


def plot(rows: list[dict], path: Path) -> None:
    """Normalised score per model (bars, mean over seeds; dots: each seed) per task."""
    from rmdt.plotting import pyplot, save_png

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(tasks)), 4.6))
    width = 0.8 / len(models)
    for m, model in enumerate(models):
        for t, task in enumerate(tasks):
            scores = [r["normalised"] for r in rows if r["task"] == task and r["model"] == model]
            if scores:
                x = t + (m - (len(models) - 1) / 2) * width
                ax.bar(x, np.mean(scores), width, color=f"C{m}", label=model if t == 0 else None)
                ax.plot([x] * len(scores), scores, "k.", markersize=3)
    ax.set_xticks(range(len(tasks)), [t.split("/")[1] for t in tasks], rotation=20, ha="right")
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("normalised score (0 random, 100 oracle)")
    ax.legend(fontsize=8, ncol=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    fig.tight_layout()
    save_png(fig, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/memory_suites",
                        help="folder for runs, results.json, table.md, scores.png")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (default 0 1 2; --quick: 0)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--quick", action="store_true", help="tiny data and training: checks the pipeline only")
    parser.add_argument("--collect", action="store_true",
                        help="train nothing: the table of the runs already evaluated (the seeds column says how many)")
    parser.add_argument("--merge", nargs="+", default=[], metavar="RESULTS_JSON",
                        help="results.json of runs made elsewhere (another machine, an earlier round): their rows "
                             "for these tasks, models and seeds join the table; a run evaluated here wins")
    args = parser.parse_args(argv)
    from rmdt.atomic import write_text

    out = Path(args.out)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    rows = [run_one(task, model, seed, out, args.quick, not args.collect)
            for task in args.tasks for model in args.models for seed in seeds]
    rows = [row for row in rows if row is not None]
    rows += merged(args.merge, {(r["task"], r["model"], r["seed"]) for r in rows}, args.tasks, args.models, seeds)
    if not rows:
        raise SystemExit(f"no evaluated runs in {out / 'runs'} for these tasks, models and seeds")
    write_text(out / "results.json", json.dumps(rows, indent=1))
    markdown = table(rows)
    write_text(out / "table.md", markdown)
    plot(rows, out / "scores.png")
    print(markdown)
    print(f"results: {out / 'results.json'}\ntable:   {out / 'table.md'}\nplot:    {out / 'scores.png'}")


if __name__ == "__main__":
    main()
