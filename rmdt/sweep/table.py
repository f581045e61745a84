"""A sweep's results as files people read: ``results.json`` (a row per evaluated run), ``table.md`` and
a PNG of normalised scores, and the rows of earlier results.json files merged in.

A row: ``task``, ``model``, ``seed`` (and ``grid``, the run's grid point, when the sweep has a grid), the
raw ``return`` and the ``normalised`` score ``100 * (return - random) / (oracle - random)`` with the
references ``ref_min`` (random) and ``ref_max`` (oracle). ``table.md`` holds, per task and model, the
mean and min-max over seeds of both; then the normalised scores as a task x model grid whose last line
is POPGym's mean over its tasks per model (the aggregate the POPGym and memoroid papers report); then
the runs that failed, with their errors.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rmdt.atomic import write_text
from rmdt.sweep.spec import run_key


def label(row: dict) -> str:
    """The table's name for a row's model: the preset, then its grid point (``gru training.lr=0.001``)."""
    return " ".join([row["model"], *(f"{key}={value}" for key, value in (row.get("grid") or {}).items())])


def row_key(row: dict) -> tuple:
    return run_key(row["task"], row["model"], row["seed"], row.get("grid"))


def merged(paths, have: set, wanted: set) -> list[dict]:
    """Rows of earlier results.json files whose run is in ``wanted`` (run keys) and not in ``have``."""
    rows = {}
    for path in paths:
        try:
            found = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise SystemExit(f"--merge {path}: cannot read a results.json ({error})") from None
        for row in found:
            if row_key(row) in wanted and row_key(row) not in have:
                rows[row_key(row)] = row
    return list(rows.values())


def spread(values) -> str:
    values = np.asarray([v for v in values if v is not None], float)
    if not len(values):
        return "-"
    return f"{values.mean():.2f} ({values.min():.2f} to {values.max():.2f})"


def grid_cell(scores: list) -> str:
    scores = [s for s in scores if s is not None]
    if not scores:
        return "-"
    low, high = f"{min(scores):.1f}", f"{max(scores):.1f}"
    return f"{np.mean(scores):.1f}" + (f" ({low} to {high})" if low != high else "")


def table(rows: list[dict], failed: dict | None = None) -> str:
    """Markdown (see the module docstring); tasks and models in the order of ``rows``; ``failed``: run
    name -> error, listed last."""
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    models = list(dict.fromkeys(label(r) for r in rows))
    cell = {(t, m): [r for r in rows if r["task"] == t and label(r) == m] for t in tasks for m in models}
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
    if failed:
        lines += ["", "| failed run | error |", "|---|---|"]
        lines += [f"| {name} | {error.strip().splitlines()[-1][:300].replace('|', '/')} |"
                  for name, error in failed.items()]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Normalised score per model (bars, mean over seeds; dots: each seed) per task."""
    from rmdt.plotting import pyplot, save_png

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    models = list(dict.fromkeys(label(r) for r in rows))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(tasks)), 4.6))
    width = 0.8 / len(models)
    for m, model in enumerate(models):
        for t, task in enumerate(tasks):
            scores = [r["normalised"] for r in rows if r["task"] == task and label(r) == model]
            if scores:
                x = t + (m - (len(models) - 1) / 2) * width
                ax.bar(x, np.mean(scores), width, color=f"C{m}", label=model if t == 0 else None)
                ax.plot([x] * len(scores), scores, "k.", markersize=3)
    ax.set_xticks(range(len(tasks)), [t.split("/")[-1] for t in tasks], rotation=20, ha="right")
    ax.axhline(100, color="grey", lw=0.8, ls="--")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_ylabel("normalised score (0 random, 100 oracle)")
    ax.legend(fontsize=8, ncol=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=False)
    fig.tight_layout()
    save_png(fig, path)


def write_results(out: Path, rows: list[dict], failed: dict) -> str:
    """``results.json``, ``table.md`` and ``scores.png`` in ``out`` (each written atomically); returns the table."""
    write_text(out / "results.json", json.dumps(rows, indent=1))
    markdown = table(rows, failed)
    write_text(out / "table.md", markdown)
    if rows:
        plot(rows, out / "scores.png")
    return markdown
