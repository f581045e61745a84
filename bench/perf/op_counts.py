"""Operator calls and time per training step and per ``act`` step, for every model preset at the
T-Maze and POPGym config sizes, beside the step's matmul FLOPs.

    python bench/perf/op_counts.py [--threads 1] [--repeats 7] [--suites tmaze popgym] [--models rmdt dt ...]
    python bench/perf/op_counts.py --baseline /tmp/rmdt_main   # side by side with another checkout
    python bench/perf/op_counts.py --quick                     # tiny sizes: seconds (the tests)
    python bench/perf/op_counts.py --models rmdt --top 8       # and where each row's step spends its time
    python bench/perf/op_counts.py --models rmdt --compile     # this checkout's loss through torch.compile

At small sizes (d_model 64, 2 layers, batch 64) a step is thousands of small operators, and the time
goes to dispatching them, on a CPU and on a GPU alike (a GPU launch costs 5-10 microseconds). The
count is every ``aten::`` event the torch profiler records (nested ones too) in one training step
(forward, backward, gradient clipping and the AdamW step, as the trainer runs them) and in one
``act`` step (the mean over two segments of steps, for ``evaluation.episodes`` environments).
FLOPs are matmul and convolution work over one forward and backward (``torch.utils.flop_counter``).

Rows: ``tmaze``, every model's T-Maze config (``configs/tmaze/<model>.yaml``: quickstart, rmdt with
memory replay, dt, rmt, trxl and the recurrent kinds); ``popgym``, ``configs/popgym/count_recall_easy.yaml``
with every preset of ``rmdt.presets`` (``model=NAME``). ``--models`` keeps the rows of those names.
Data comes from the configs' own recipes, with fewer episodes, built in a temporary folder.

``--baseline DIR``: a checkout of rmdt (``git worktree add /tmp/rmdt_main main``) is imported beside
this one; each row is built by both from the same seed on the same batch, the timed steps alternate
between them (``--repeats`` rounds, the median of each kept, so load from other processes hits both
alike), and the table adds the ratios and the largest differences of loss and gradients.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("KINETO_LOG_LEVEL", "6")  # the profiler's start/stop lines on stderr, before torch loads
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from rmdt.evaluation.dataset_acting import DatasetActing  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TMAZE = ("quickstart", "rmdt", "dt", "rmt", "trxl", "ffm", "linear_attention", "lru", "gru", "lstm")
POPGYM = "configs/popgym/count_recall_easy.yaml"
EPISODES = {"tmaze": 300, "popgym": 60}  # recipe episodes (by recipe): enough for distinct windows
QUICK = ["data.context_len=4", "model.d_model=16", "training.batch_size=4", "evaluation.episodes=4"]


def rmdt_api(root: Path | None = None) -> SimpleNamespace:
    """What the bench calls of rmdt: this checkout's, or (``root``) another checkout's, imported
    beside it under the same names (its modules are swapped out of ``sys.modules`` again)."""
    names = ("rmdt.config", "rmdt.data", "rmdt.models.factory", "rmdt.training.optim", "rmdt.presets")
    if root is None:
        modules = [__import__(name, fromlist=["_"]) for name in names]
    else:
        ours = {k: v for k, v in sys.modules.items() if k == "rmdt" or k.startswith("rmdt.")}
        for key in ours:
            del sys.modules[key]
        sys.path.insert(0, str(root))
        try:
            modules = [__import__(name, fromlist=["_"]) for name in names]
        finally:
            sys.path.remove(str(root))
            for key in [k for k in sys.modules if k == "rmdt" or k.startswith("rmdt.")]:
                del sys.modules[key]
            sys.modules.update(ours)
            from rmdt.models.registry import MODELS, register_with_transformers

            for kind in MODELS.entries.values():  # checkpoints load as this checkout's classes again
                register_with_transformers(kind.config_class, kind.model_class)
    config, data, factory, optim, presets = modules
    return SimpleNamespace(load_config=config.load_config, load_config_data=data.load_config_data,
                           build_sampler=data.build_sampler, build_policy=factory.build_policy,
                           make_optimizer=optim.make_optimizer, presets=list(presets.PRESETS))


@dataclasses.dataclass
class Setup:
    """One row as one checkout builds it: the policy, its optimizer and a training batch."""
    config: object
    trajectories: object
    policy: torch.nn.Module
    optimizer: torch.optim.Optimizer
    batch: object


def build(api: SimpleNamespace, path: str, overrides: list[str], data_root: str, seed: int = 0) -> Setup:
    config = api.load_config(ROOT / path, [*overrides, f"data.root={data_root}", "data.prefetch=0"])
    args = {**config.data.recipe_args, "episodes": EPISODES.get(config.data.recipe, 100)}
    config.data.recipe_args = args
    trajectories = api.load_config_data(config.data)
    torch.manual_seed(seed)
    policy = api.build_policy(config, trajectories)
    optimizer, _ = api.make_optimizer(policy, config)
    batch = api.build_sampler(config.data, trajectories, seed).batch(0, config.training.batch_size)
    return Setup(config, trajectories, policy, optimizer, batch)


def train_step(setup: Setup) -> torch.Tensor:
    """Forward, backward, clipping and AdamW, as the trainer runs them on one process (from a fixed
    random state, so memory replay draws the same number of replays in every checkout and repeat)."""
    torch.manual_seed(0)
    loss, _ = setup.policy.loss(setup.batch)
    loss.backward()
    clip = setup.config.training.grad_clip
    torch.nn.utils.clip_grad_norm_(setup.policy.parameters(), clip if clip > 0 else float("inf"))
    setup.optimizer.step()
    setup.optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def aten_calls(fn) -> int:
    """``aten::`` events the profiler records while ``fn`` runs."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for event in prof.events() if event.name.startswith("aten::"))


def top_operators(setup: Setup, count: int) -> str:
    """The profiler's table of the ``count`` operators with the most self time in one training step."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(setup)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=count)


def matmul_flops(setup: Setup) -> float:
    with FlopCounterMode(display=False) as counter:
        setup.policy.loss(setup.batch)[0].backward()
    setup.policy.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def act_steps(config) -> int:
    """Two segments of steps (recurrent kinds: two segments' worth of the data's context)."""
    return 2 * config.data.context_len


def measure(setups: list[Setup], repeats: int) -> list[dict]:
    """Counts, then times of each setup, the timed repeats alternating between the setups."""
    out = []
    for setup in setups:
        acting = DatasetActing(setup.policy, setup.trajectories, setup.config.evaluation.episodes)
        steps = act_steps(setup.config)
        train_step(setup)  # warm-up: lazy state (optimizer moments, caches)
        acting.run(steps)
        out.append({"train_calls": aten_calls(lambda s=setup: train_step(s)),
                    "act_calls": aten_calls(lambda a=acting: a.run(steps)) / steps, "flops": matmul_flops(setup),
                    "train_s": [], "act_s": [], "acting": (acting, steps)})
    for _ in range(repeats):
        for setup, row in zip(setups, out):
            row["train_s"].append(seconds(lambda s=setup: train_step(s)))
            acting, steps = row["acting"]
            row["act_s"].append(acting.run(steps) / steps)
    for row in out:
        row["train_ms"] = 1e3 * statistics.median(row.pop("train_s"))
        row["act_ms"] = 1e3 * statistics.median(row.pop("act_s"))
        del row["acting"]
    return out


def differences(ours: Setup, theirs: Setup) -> dict:
    """Largest absolute differences of the loss and of any gradient, from the same weights and batch."""
    ours.policy.load_state_dict(theirs.policy.state_dict())
    grads = []
    for setup in (ours, theirs):
        torch.manual_seed(1)
        setup.policy.zero_grad(set_to_none=True)
        loss, _ = setup.policy.loss(setup.batch)
        loss.backward()
        named = setup.policy.named_parameters()
        grads.append((float(loss.detach()), {n: p.grad for n, p in named if p.grad is not None}))
        setup.policy.zero_grad(set_to_none=True)
    (a, ga), (b, gb) = grads
    if ga.keys() != gb.keys():
        return {"loss_diff": abs(a - b), "grad_diff": float("nan")}
    gaps = ((ga[n] - gb[n]).abs().max().item() for n in ga if ga[n].numel())
    return {"loss_diff": abs(a - b), "grad_diff": max(gaps, default=0.0)}


def plan(args, presets: list[str]) -> list[tuple[str, str, str, list[str]]]:
    """(suite, model, config path, overrides) of every row asked for."""
    rows = []
    if "tmaze" in args.suites:
        rows += [("tmaze", name, f"configs/tmaze/{name}.yaml", []) for name in TMAZE]
    if "popgym" in args.suites:
        rows += [("popgym", name, POPGYM, [f"model={name}"]) for name in presets]
    return [row for row in rows if not args.models or row[1] in args.models]


def print_table(rows: list[dict], baseline: bool) -> None:
    head = ["row", "model", "train calls", "train ms", "act calls", "act ms", "MFLOP"]
    if baseline:
        head += ["calls was", "calls x", "train ms was", "speed-up", "act calls was", "act x", "|dloss|", "|dgrad|"]
    lines = [head]
    for r in rows:
        line = [r["row"], r["model"], f"{r['train_calls']:,}", f"{r['train_ms']:.1f}", f"{r['act_calls']:,.0f}",
                f"{r['act_ms']:.2f}", f"{r['flops'] / 1e6:,.0f}"]
        if baseline:
            b = r["baseline"]
            line += [f"{b['train_calls']:,}", f"{b['train_calls'] / r['train_calls']:.2f}", f"{b['train_ms']:.1f}",
                     f"{b['train_ms'] / r['train_ms']:.2f}", f"{b['act_calls']:,.0f}",
                     f"{b['act_calls'] / r['act_calls']:.2f}", f"{r['loss_diff']:.1e}", f"{r['grad_diff']:.1e}"]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    print("| " + " | ".join(c.ljust(w) for c, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines[1:]:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths)) + " |")


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per row (the median is kept)")
    parser.add_argument("--suites", nargs="+", default=["tmaze", "popgym"], choices=["tmaze", "popgym"])
    parser.add_argument("--models", nargs="+", default=None, help="only these rows' models (default: all)")
    parser.add_argument("--baseline", type=Path, default=None, help="another rmdt checkout to compare with")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and data: checks the bench only")
    parser.add_argument("--compile", action="store_true",
                        help="this checkout's loss through torch.compile (a baseline's stays eager)")
    parser.add_argument("--top", type=int, default=0, metavar="N",
                        help="also print each row's N operators with the most self time in a training step")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        EPISODES.update(tmaze=20, popgym=6)
    ours = rmdt_api()
    theirs = rmdt_api(args.baseline) if args.baseline else None
    results = []
    with tempfile.TemporaryDirectory() as root:
        for name, preset, path, overrides in plan(args, ours.presets):
            overrides = overrides + (QUICK if args.quick else [])
            setups = [build(ours, path, overrides, root)]
            if args.compile:
                setups[0].policy.loss = torch.compile(setups[0].policy.loss)
            if theirs:
                setups.append(build(theirs, path, overrides, root))
            measured = measure(setups, 1 if args.quick else args.repeats)
            row = {"row": name, "model": preset, **measured[0]}
            if theirs:
                row.update(baseline=measured[1], **differences(*setups))
            results.append(row)
            print(f"  {name} {preset}: {row['train_calls']:,} calls, {row['train_ms']:.1f} ms", flush=True)
            if args.top:
                print(top_operators(setups[0], args.top))
    print(f"\ntorch {torch.__version__}, {args.threads} thread(s), median of {args.repeats} interleaved repeats")
    print_table(results, theirs is not None)
    return results


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
