"""rmdt's DT and RMDT beside d3rlpy's DecisionTransformer on D4RL-layout MuJoCo data made by a real RL agent.

    python bench/experiments/mujoco_peers.py --tasks hopper halfcheetah walker2d --seeds 0 1 2 \\
        --d3rlpy-python /tmp/d3rlpy/bin/python --out docs/mujoco_peers.json

Every system trains on the same file (the ``d4rl_mujoco`` recipe's medium data, built if missing) with the same
batch, steps and learning rate, and is evaluated on the same number of episodes at two targets: the
standard one of the DT paper (hopper 3600, halfcheetah 6000, walker2d 5000) and one near the data's best
episode return. Each run is its own process (its peak resident memory is the run's) with ``--threads``
torch threads; rows are added to ``--out`` as runs finish, and runs already there are skipped, so a killed
bench continues where it stopped. ``--rmdt-overrides`` / ``--label`` run a variant of the rmdt configs.
The table printed (and written beside ``--out`` as .md, with a plot as .png): normalised score (95% bootstrap
interval over episodes) per seed and the mean over seeds at each target, ms per training step and peak memory.

CORL's dt.py is not run: it imports d4rl (which does not import on a current stack), gym, pyrallis and
wandb at module level.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from rmdt.envs.d4rl_mujoco.recipe import AGENTS, DEFAULTS, file_names

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
STANDARD_TARGETS = {"hopper": 3600.0, "halfcheetah": 6000.0, "walker2d": 5000.0}  # the DT paper's
SYSTEMS = ("rmdt-dt", "rmdt-rmdt", "d3rlpy-dt")


def data_name(task: str, args) -> str:
    """The name of the medium file the recipe writes for these arguments, known without building it."""
    return file_names(task, args.agent, args.agent_steps, args.medium_steps, DEFAULTS["seed"])["medium"]


def dataset_file(task: str, args) -> str:
    from rmdt.envs.d4rl_mujoco.recipe import build

    return build(env=task, agent=args.agent, agent_steps=args.agent_steps, medium_steps=args.medium_steps,
                 root=args.data_root)


def best_return(path: str) -> float:
    """The data's best episode return, rounded down to a hundred: the target a DT has seen."""
    from rmdt.data import load_trajectories

    return float(np.floor(load_trajectories(path).episode_returns.max() / 100) * 100)


def rmdt_child(config: str, out: str, threads: int, overrides: list[str]) -> None:
    """Trains and evaluates one rmdt run in this process; writes its JSON to ``out``."""
    import torch

    from rmdt.config import load_config
    from rmdt.evaluation import evaluate_policy
    from rmdt.training import train
    from rmdt.training.checkpoint import checkpoint_dirs, read_state

    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(load_config(config, overrides), run_dir=Path(run_dir) / "run")
        state = read_state(checkpoint_dirs(result.run_dir)[-1])
        report = evaluate_policy(result.policy, result.policy.config.evaluation, progress=False)
    rows = [{"target_return": r["target_return"], "returns": r["returns"], "mean_return": r["mean_return"]}
            for r in report["results"]]
    Path(out).write_text(json.dumps({"train_seconds": state["train_seconds"], "steps": state["step"],
                                     "results": rows,
                                     "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run_one(system: str, task: str, seed: int, data: str, targets: list[float], args) -> dict:
    """One training + evaluation in a child process; its JSON."""
    from rmdt.evaluation.scores import D4RL_ENV_IDS

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        if system == "d3rlpy-dt":
            if not args.d3rlpy_python:
                raise SystemExit("d3rlpy-dt needs --d3rlpy-python (a Python with d3rlpy; see docs/mujoco.md)")
            command = [args.d3rlpy_python, str(HERE / "peers" / "d3rlpy_dt.py"), "--dataset", data,
                       "--env-id", D4RL_ENV_IDS[task], "--seed", str(seed), "--steps", str(args.steps),
                       "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--episodes", str(args.episodes),
                       "--threads", str(args.threads), "--out", str(out), "--targets", *map(str, targets)]
        else:
            config = ROOT / "configs" / "mujoco" / f"{task}_{system.split('-')[1]}.yaml"
            overrides = [f"data.dataset={data}", f"seed={seed}", f"training.steps={args.steps}",
                         f"training.batch_size={args.batch_size}", f"training.lr={args.lr}",
                         f"training.checkpoint_every={args.steps}", f"evaluation.episodes={args.episodes}",
                         f"evaluation.target_return=[{', '.join(map(str, targets))}]", "training.trackers=[]",
                         *args.rmdt_overrides]
            command = [sys.executable, __file__, "--child-rmdt", str(config), "--child-out", str(out),
                       "--threads", str(args.threads), "--", *overrides]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{system} {task} seed {seed} failed:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def score_row(task: str, data_name: str, system: str, label: str, seed: int, result: dict, targets: dict, args) -> dict:
    from rmdt.evaluation.rollout import mean_interval
    from rmdt.evaluation.scores import D4RL_REFERENCES, normalise

    refs = D4RL_REFERENCES[task]
    scores = {}
    for name, target in targets.items():
        returns = next(r["returns"] for r in result["results"] if abs(r["target_return"] - target) < 1e-6)
        low, high = mean_interval(returns)
        scores[name] = {"target": target, "returns": returns, "mean_return": float(np.mean(returns)),
                        "normalised": float(normalise(np.mean(returns), *refs)),
                        "normalised_ci95": [float(normalise(low, *refs)), float(normalise(high, *refs))]}
    return {"task": task, "data": data_name, "system": system, "label": label, "seed": seed, "steps": result["steps"],
            "batch_size": args.batch_size, "lr": args.lr, "episodes": args.episodes, "threads": args.threads,
            "ms_per_step": 1000 * result["train_seconds"] / result["steps"], "peak_rss_mb": result["peak_rss_mb"],
            "scores": scores, "rmdt_overrides": args.rmdt_overrides if system.startswith("rmdt") else []}


def table(rows: list[dict]) -> str:
    """Per data file and system (label): each seed's normalised score at both targets, the means, speed, memory."""
    lines = ["| data | system | seeds | standard target: per seed | mean | near best: per seed | mean | "
             "ms per step | peak MB |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list] = {}
    for row in rows:
        groups.setdefault((row["data"].removesuffix("-v0.hdf5"), row["label"]), []).append(row)
    for (data, label), runs in sorted(groups.items()):
        runs.sort(key=lambda r: r["seed"])
        cells = []
        for name in ("standard", "best"):
            scores = [r["scores"][name] for r in runs]
            per_seed = ", ".join(f"{s['normalised']:.1f} [{s['normalised_ci95'][0]:.1f}, {s['normalised_ci95'][1]:.1f}]"
                                 for s in scores)
            mean = np.mean([s["normalised"] for s in scores])
            cells += [f"({scores[0]['target']:.0f}) {per_seed}", f"**{mean:.1f}**"]
        ms = [r["ms_per_step"] for r in runs]
        lines.append(f"| {data} | {label} | {len(runs)} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} | "
                     f"{np.mean(ms):.0f} ({min(ms):.0f}-{max(ms):.0f}) | {max(r['peak_rss_mb'] for r in runs):.0f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """One panel per data file: each system's per-seed normalised scores at both targets and their means."""
    from rmdt.plotting import pyplot, save_png

    datas = sorted({r["data"] for r in rows})
    fig, axes = pyplot().subplots(1, len(datas), figsize=(4.5 * len(datas), 4), squeeze=False)
    for ax, data in zip(axes[0], datas):
        labels = sorted({r["label"] for r in rows if r["data"] == data})
        for x, label in enumerate(labels):
            runs = [r for r in rows if (r["data"], r["label"]) == (data, label)]
            for shift, (name, marker) in zip((-0.15, 0.15), (("standard", "o"), ("best", "s"))):
                scores = [r["scores"][name]["normalised"] for r in runs]
                ax.bar(x + shift, np.mean(scores), width=0.28, color="C0" if name == "standard" else "C1", alpha=0.5,
                       label=(f"{name} target" if x == 0 else None))
                ax.scatter([x + shift] * len(scores), scores, marker=marker, color="black", s=14, zorder=3)
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(data.removesuffix("-v0.hdf5"), fontsize=9)
        ax.set_ylabel("D4RL normalised score (bars: mean over seeds)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(STANDARD_TARGETS), choices=list(STANDARD_TARGETS))
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--episodes", type=int, default=20, help="evaluation episodes per target")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each run")
    parser.add_argument("--data-root", default=None, help="where the recipe's files are (default: its own)")
    parser.add_argument("--agent", default="ppo", choices=AGENTS, help="the recipe's stable-baselines3 agent")
    parser.add_argument("--agent-steps", type=int, default=200_000, help="the recipe's agent training steps")
    parser.add_argument("--medium-steps", type=int, default=200_000, help="the recipe's steps of medium play")
    parser.add_argument("--d3rlpy-python", default=None, help="Python of a virtual environment with d3rlpy")
    parser.add_argument("--rmdt-overrides", nargs="*", default=[], help="extra overrides of the rmdt runs")
    parser.add_argument("--label", default=None, help="row name of this variant (default: the system)")
    parser.add_argument("--out", default="docs/mujoco_peers.json")
    parser.add_argument("--show", nargs="+", metavar="JSON", help="only print the table of these result files "
                                                                   "(e.g. of benches run side by side)")
    parser.add_argument("--png", help="with --show: also plot those rows to this PNG")
    parser.add_argument("--child-rmdt", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_rmdt:
        return rmdt_child(args.child_rmdt, args.child_out, args.threads, args.overrides)

    if args.show:
        rows = [row for path in args.show for row in json.loads(Path(path).read_text())]
        if args.png:
            plot(rows, Path(args.png))
        return print(table(rows))
    from rmdt.progress import progress_bar

    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.is_file() else []
    todo = [(t, s, seed) for t in args.tasks for s in args.systems for seed in args.seeds]
    files: dict[str, tuple[str, dict]] = {}  # task -> (its data file, its two targets), found once
    with progress_bar(total=len(todo), desc="runs") as bar:
        for task, system, seed in todo:
            label = f"{system} {args.label}" if args.label else system
            name = data_name(task, args)
            if any((r["data"], r["label"], r["seed"], r["steps"]) == (name, label, seed, args.steps) for r in rows):
                bar.update()
                continue
            if task not in files:
                data = dataset_file(task, args)
                files[task] = data, {"standard": STANDARD_TARGETS[task], "best": best_return(data)}
            data, targets = files[task]
            result = run_one(system, task, seed, data, list(targets.values()), args)
            rows.append(score_row(task, name, system, label, seed, result, targets, args))
            out.write_text(json.dumps(rows, indent=1))
            bar.update()
    shown = [r for r in rows if r["steps"] == args.steps]
    text = table(shown)
    out.with_suffix(".md").write_text(text + "\n")
    plot(shown, out.with_suffix(".png"))
    print(text)


if __name__ == "__main__":
    main()
