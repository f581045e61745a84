"""Summarise T-Maze evaluations over seeds as a markdown table: mean success and min-max per length.

    python bench/experiments/tmaze_table.py runs/results/*__*/ [--plot docs/tmaze_seeds.png] [--models rmdt dt ...]

Run directories are grouped by their name without the trailing ``__{seed}``; rows follow
``--models`` when given (else sorted by name). ``--plot`` also draws success against corridor
length per model (mean over seeds, min-max band), the figure the README shows.
"""
import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def success_by_length(paths, models=None) -> tuple[list[int], dict[str, dict[int, list[float]]]]:
    """The evaluated corridor lengths and, per model, each length's success rate on every seed."""
    groups = defaultdict(list)
    for path in map(Path, paths):
        report = path / "eval" / "results.json"
        if report.is_file():
            groups[path.name.rsplit("__", 1)[0]].append(json.loads(report.read_text()))
    names = [m for m in models if m in groups] if models else sorted(groups)
    lengths = sorted({r["corridor_length"] for name in names for rep in groups[name] for r in rep["results"]})
    rates = {name: {n: [r["success_rate"] for rep in groups[name] for r in rep["results"] if r["corridor_length"] == n]
                    for n in lengths} for name in names}
    return lengths, rates


def table(lengths, rates) -> str:
    lines = ["| model | seeds | " + " | ".join(str(n) for n in lengths) + " |", "|---|---|" + "---|" * len(lengths)]
    for name, by_length in rates.items():
        cells = [f"{np.mean(r):.2f} ({min(r):.2f}-{max(r):.2f})" if r else "" for r in by_length.values()]
        lines.append(f"| {name} | {max(map(len, by_length.values()))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(lengths, rates, path) -> None:
    from rmdt.plotting import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (name, by_length) in enumerate(rates.items()):
        xs = [n for n in lengths if by_length[n]]
        ax.plot(xs, [np.mean(by_length[n]) for n in xs], "o-", color=f"C{i}", label=name, markersize=3)
        ax.fill_between(xs, [min(by_length[n]) for n in xs], [max(by_length[n]) for n in xs], color=f"C{i}", alpha=0.15)
    ax.set_xscale("log")
    ax.set(xlabel="corridor length", ylabel="success rate (mean over seeds, min-max band)", ylim=(0.4, 1.02))
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.legend(fontsize=8, ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.14))  # below: the bands stay readable
    fig.tight_layout()
    save_png(fig, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories named {model}__{seed}")
    parser.add_argument("--models", nargs="+", help="rows to show, in this order (default: all, sorted)")
    parser.add_argument("--plot", help="PNG of success against corridor length per model")
    args = parser.parse_args(argv)
    lengths, rates = success_by_length(args.runs, args.models)
    print(table(lengths, rates))
    if args.plot:
        plot(lengths, rates, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
