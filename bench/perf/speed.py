"""Speed and memory at the RATE reference's own T-Maze setting, DT against Hugging Face, recomputed
segments and torch.compile: one table with ratios, JSON beside it. ``--throughput``: RMDT's training
and evaluation throughput at that setting, per CPU autocast precision.

    python bench/perf/speed.py --reference /tmp/rate_ref [--threads 2] [--repeats 3] [--out runs/bench/speed.json]
    python bench/perf/speed.py --throughput [--threads 1] [--precision no bf16] [--batches 3]
    python bench/perf/speed.py --quick [--throughput]   # tiny sizes, no reference, no compile: seconds (the tests)
    python bench/perf/speed.py --set model.memory_update=replace ...   # overrides of the RATE config

RATE's T-Maze setting is read from ``configs/tmaze/rate.yaml`` (its model, K, N and batch size;
the T-Maze oracle data of its recipe arguments, fewer episodes: timing needs a few batches' worth),
the FFM row's model from ``configs/tmaze/ffm.yaml``. The reference is not part of rmdt: export it
outside the repository and pass its root,

    git --git-dir=<mirror of github.com/CognitiveAISystems/RATE> archive HEAD RATE | tar -x -C /tmp/rate_ref

and its model is imported from there, at the same sizes. A training batch is forward, backward,
gradient clipping and an AdamW step: rmdt backpropagates through all N segments; the reference runs
its own loop (memory detached, backward and optimizer step per segment). All timed steps run
round-robin in one process (``--repeats`` rounds after a warm-up, the best of each kept), so load
from other processes hits them alike: compare ratios, not absolute times. Peak memory is the
resident-set high-water mark of a fresh subprocess per configuration running one batch. FLOPs are
matmul work counted by ``torch.utils.flop_counter`` over one forward and backward. The fp32 matmul
limit is the best GFLOP/s of a 1024^2 matrix product (and of the model's own skinny shape) at the
same thread count.

``--throughput`` prints, for each precision, seconds per training batch (``--batches`` timed after a
warm-up), windows/s and tokens/s, and evaluation steps/s of the config's ``evaluation.episodes``
corridors (of 2 K N steps) stepped together through ``act``; run the precisions in one process and
compare their ratio, not absolute times, on a shared machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from rmdt.atomic import write_text
from rmdt.config import load_config
from rmdt.data import Trajectories, build_sampler
from rmdt.data.segments import Batch
from rmdt.data.synthetic import tmaze_oracle
from rmdt.models import RMDTConfig, RMDTModel
from rmdt.models.factory import build_policy

ROOT = Path(__file__).resolve().parents[2]
RATE_CONFIG = ROOT / "configs" / "tmaze" / "rate.yaml"
FFM_CONFIG = ROOT / "configs" / "tmaze" / "ffm.yaml"
QUICK = ["data.context_len=4", "data.recipe_args={episodes: 64, min_length: 1, max_length: 10, seed: 0}",
         "model.memory_tokens=2", "model.d_model=16", "model.n_layers=2", "training.batch_size=4",
         "evaluation.episodes=4"]


class DTSizes(NamedTuple):  # DT against Hugging Face: context, width, layers, heads, batch
    K: int
    d: int
    layers: int
    heads: int
    batch: int


DT_FULL, DT_QUICK = DTSizes(20, 128, 3, 1, 64), DTSizes(4, 16, 1, 1, 4)
OBS, ACT = 11, 3  # hopper-like windows for the DT comparison


# ---- T-Maze windows and the models ----
def rate_config(args, extra=()):
    """configs/tmaze/rate.yaml with --quick's sizes, --set's overrides and ``extra``."""
    return load_config(RATE_CONFIG, (QUICK if args.quick else []) + list(args.set) + list(extra))


def tmaze_data(config) -> Trajectories:
    """T-Maze oracle episodes up to the recipe's longest corridor, a few batches' worth."""
    recipe = config.data.recipe_args
    episodes = min(recipe["episodes"], max(4 * config.training.batch_size, 64))
    return tmaze_oracle(episodes, recipe["max_length"], recipe["seed"])


def tmaze_batch(config, data: Trajectories, step: int = 0) -> Batch:
    """Batch ``step`` of the config's own sampler (windows from episode starts, as RATE trains)."""
    sampler = build_sampler(dataclasses.replace(config.data, prefetch=0), data, config.seed)
    return sampler.batch(step, config.training.batch_size)


def policy(config, data: Trajectories):
    """The config's model on ``data``, in training mode, with its training-time options (as the trainer)."""
    torch.manual_seed(0)
    model = build_policy(config, data)
    if config.training.checkpoint_segments:
        model.checkpoint_segments = True
    return model.train()


def label(config) -> str:
    """A row's name, from what its config says."""
    m = config.model
    text = f"rmdt {m.memory_update}, dropout {m.dropout:g}"
    if m.attn_dropout:
        text += f", attention dropout {m.attn_dropout:g}"
    return text + (", checkpoint_segments" if config.training.checkpoint_segments else "")


def rmdt_variants(args) -> dict[str, list[str]]:
    """role -> overrides of the RATE config: its own setting, without dropout, with the plain replace
    update, with attention dropout, with recomputed segments."""
    return {"base": [], "no dropout": ["model.dropout=0.0"], "replace": ["model.memory_update=replace"],
            "replace, no dropout": ["model.memory_update=replace", "model.dropout=0.0"],
            "attention dropout": ["model.attn_dropout=0.2"],
            "checkpoint": ["training.checkpoint_segments=true"]}


def train_step(model: torch.nn.Module, loss_fn):
    """forward + backward + clip + AdamW step of ``loss_fn()``."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def rmdt_step(model, batch, compile=False):
    loss = torch.compile(model.loss) if compile else model.loss
    return train_step(model, lambda: loss(batch)[0])


def reference_step(path: str, config, batch: Batch):
    """The RATE reference's training loop on ``batch`` at the config's sizes: per segment, memory
    tokens detached, then forward, cross entropy over the real steps, backward, clip and AdamW step
    (its trainer's order). Its 32-dim heads and inner size are the reference's own."""
    sys.path.insert(0, str(Path(path).resolve()))  # the exported reference, not a bench script
    from RATE.RATE_model import RATE
    m, K, N, B = config.model, config.data.context_len, config.data.num_segments, config.training.batch_size
    torch.manual_seed(0)
    model = RATE(state_dim=4, act_dim=4, n_layer=m.n_layers, n_head=m.n_heads, n_head_ca=m.mrv_heads,
                 d_model=m.d_model, d_head=32, d_inner=32, dropout=m.dropout, dropatt=m.attn_dropout, tgt_len=3 * K,
                 ext_len=0, mem_len=0, num_mem_tokens=m.memory_tokens, mem_at_end=True, env_name="tmaze",
                 mrv_act="relu", skip_dec_ffn=not m.feed_forward, padding_idx=-10).train()
    torch.nn.init.xavier_uniform_(model.r_w_bias)
    torch.nn.init.xavier_uniform_(model.r_r_bias)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    states, rtgs = batch.observations.float(), batch.returns_to_go[..., None]
    actions = torch.where(batch.mask, batch.actions, -10)[..., None]

    def step():
        memory = None
        for seg in range(N):
            part = slice(seg * K, (seg + 1) * K)
            memory = model.mem_tokens.repeat(1, B, 1) if memory is None else memory.detach()
            out = model(states[:, part], actions[:, part].float(), rtgs[:, part], actions[:, part],
                        batch.timesteps[:, part], mem_tokens=memory)
            memory = out["mem_tokens"]
            loss = F.cross_entropy(out["logits"][batch.mask[:, part]], batch.actions[:, part][batch.mask[:, part]])
            optimizer.zero_grad()
            loss.backward(retain_graph=True)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    return model, step


# ---- DT against Hugging Face ----
def dt_windows(s: DTSizes) -> dict:
    g = torch.Generator().manual_seed(0)
    B, K = s.batch, s.K
    return dict(states=torch.randn(B, K, OBS, generator=g), actions=torch.rand(B, K, ACT, generator=g) * 2 - 1,
                returns_to_go=torch.rand(B, K, generator=g) * 3, mask=torch.ones(B, K, dtype=torch.bool),
                timesteps=torch.randint(0, 1000 - K, (B, 1), generator=g) + torch.arange(K))


def rmdt_dt(s: DTSizes, w: dict, attn_dropout: float):
    torch.manual_seed(0)
    model = RMDTModel(RMDTConfig(obs_shape=[OBS], act_dim=ACT, context_len=s.K, memory_tokens=0, d_model=s.d,
                                 n_layers=s.layers, n_heads=s.heads, dropout=0.1, attn_dropout=attn_dropout)).train()
    batch = Batch(returns_to_go=w["returns_to_go"], observations=w["states"], actions=w["actions"],
                  rewards=torch.zeros_like(w["returns_to_go"]), timesteps=w["timesteps"], mask=w["mask"])
    return model, train_step(model, lambda: model.loss(batch)[0])


def hf_dt(s: DTSizes, w: dict, attn_dropout: float):
    from transformers import DecisionTransformerConfig, DecisionTransformerModel
    torch.manual_seed(0)
    config = DecisionTransformerConfig(state_dim=OBS, act_dim=ACT, hidden_size=s.d, n_layer=s.layers,
                                       n_head=s.heads, n_inner=4 * s.d, max_ep_len=1000, n_positions=3 * s.K,
                                       resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=attn_dropout,
                                       activation_function="gelu_new", action_tanh=True)
    model = DecisionTransformerModel(config).train()
    mask = w["mask"]

    def loss():
        preds = model(states=w["states"], actions=w["actions"], returns_to_go=w["returns_to_go"][..., None],
                      timesteps=w["timesteps"], attention_mask=mask.long(), return_dict=True).action_preds
        return (preds - w["actions"]).pow(2).mean(-1)[mask].mean()
    return model, train_step(model, loss)


# ---- the runs ----
FFM_ROW = "FFM (configs/tmaze/ffm.yaml model)"


def rows(args, compile: bool) -> tuple[dict, dict]:
    """(name -> builder of (model, step) from the T-Maze data and batch, role -> name); built lazily,
    so that a memory subprocess builds only its own row."""
    out, names = {}, {}
    if args.reference:
        base = rate_config(args)
        names["reference"] = f"RATE reference, dropout {base.model.dropout:g}"
        out[names["reference"]] = lambda data, batch: reference_step(args.reference, base, batch)
    for role, extra in rmdt_variants(args).items():
        config = rate_config(args, extra)
        names[role] = label(config)
        out[names[role]] = lambda data, batch, c=config: (lambda m: (m, rmdt_step(m, batch)))(policy(c, data))
    ffm = load_config(FFM_CONFIG)
    out[FFM_ROW] = lambda data, batch: (lambda m: (m, rmdt_step(m, batch)))(policy(ffm, data))
    if compile:
        base = rate_config(args)
        names["compiled"] = f"{names['base']}, compiled"
        out[names["compiled"]] = lambda data, batch: (lambda m: (m, rmdt_step(m, batch, True)))(policy(base, data))
        out["FFM, compiled"] = lambda data, batch: (lambda m: (m, rmdt_step(m, batch, True)))(policy(ffm, data))
    dt = DT_QUICK if args.quick else DT_FULL
    for p in (0.1, 0.0):
        out[f"DT rmdt, attention dropout {p:g}"] = lambda data, batch, p=p: rmdt_dt(dt, dt_windows(dt), p)
        out[f"DT Hugging Face, attention dropout {p:g}"] = lambda data, batch, p=p: hf_dt(dt, dt_windows(dt), p)
    return out, names


def interleaved(steps: dict, repeats: int) -> tuple[dict, dict, dict]:
    """name -> matmul FLOPs of the warm-up call (not counted when compiled), its seconds, and the
    timed seconds of every round, each round timing every step once."""
    flops, first = {}, {}
    for name, step in list(steps.items()):
        start = time.perf_counter()
        if "compiled" not in name:
            flops[name] = matmul_flops(step)
        else:
            try:
                step()
            except Exception as error:  # noqa: BLE001 - a compiler failure is a finding, not a crash
                print(f"  {name}: compilation failed ({type(error).__name__}: {error}); row left out", flush=True)
                del steps[name]
                continue
        first[name] = time.perf_counter() - start
        print(f"  warm-up {name}: {first[name]:.2f} s", flush=True)
    times = {name: [] for name in steps}
    for r in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
        print(f"  round {r + 1}/{repeats}: " + ", ".join(f"{t[-1]:.2f}" for t in times.values()), flush=True)
    return flops, first, times


def matmul_flops(step) -> float:
    """Matmul FLOPs of one training batch (the optimizer step adds none)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def matmul_limit(threads: int, quick: bool) -> dict:
    """Best fp32 GFLOP/s of a square product and of the model's skinny (B*T, d) x (d, 3d) shape."""
    out = {}
    for name, (m, k, n) in {"square 1024": (1024, 1024, 1024), "skinny 23040x64x192": (23040, 64, 192)}.items():
        if quick:
            m, k, n = m // 8, k if k == 64 else k // 8, n if n == 192 else n // 8
        a, b = torch.randn(m, k), torch.randn(k, n)
        best = min(_timed(lambda: a @ b) for _ in range(10))
        out[name] = 2 * m * k * n / best / 1e9
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def child_args(args) -> list[str]:
    """The options a memory subprocess needs to build the same rows."""
    command = ["--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    command += ["--reference", args.reference] if args.reference else []
    return command + (["--set", *args.set] if args.set else [])


def peak_memory(name: str, args, segments: int = 0) -> dict | None:
    """Runs one training batch of ``name`` in a fresh process; its RSS before and high-water after."""
    command = [sys.executable, __file__, "--memory-of", name, *child_args(args)]
    command += ["--segments", str(segments)] if segments else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:  # e.g. killed for memory on a shared machine
        print(f"  memory of {name}: exit {done.returncode}, {done.stderr.strip()[-300:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_child(args) -> None:
    import psutil
    torch.set_num_threads(args.threads)
    if args.segments:  # a long window: every row's config with that many segments
        args.set = [*args.set, f"data.num_segments={args.segments}"]
    config = rate_config(args)
    data = tmaze_data(config)
    model, step = rows(args, compile=False)[0][args.memory_of](data, tmaze_batch(config, data))
    before = psutil.Process().memory_info().rss
    step()
    # VmHWM, not getrusage's ru_maxrss: that one survives exec and reports the parent's high-water mark.
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"rss_before_gb": before / 1e9, "peak_gb": peak / 1e9, "growth_gb": (peak - before) / 1e9}))


def throughput(args) -> dict:
    """``--throughput``: per precision, training s/batch, windows/s and tokens/s, and evaluation speed."""
    from rmdt.envs.tmaze.env import TMazeVectorEnv
    from rmdt.evaluation.rollout import rollout

    config = rate_config(args)
    d, m, batch_size = config.data, config.model, config.training.batch_size
    K, N, envs = d.context_len, d.num_segments, config.evaluation.episodes
    data = tmaze_data(config)
    batches = [tmaze_batch(config, data, step) for step in range(args.batches + 1)]
    tokens = batch_size * N * (3 * K + 2 * m.memory_tokens)
    print(f"{torch.get_num_threads()} threads; {label(config)}, {m.n_layers} layers, d_model {m.d_model}, "
          f"{sum(p.numel() for p in policy(config, data).parameters()):,} parameters, batch {batch_size}, "
          f"K={K}, N={N}", flush=True)
    report = {"threads": torch.get_num_threads(), "config": label(config), "batch": batch_size, "K": K, "N": N,
              "tokens_per_batch": tokens, "precision": {}}
    for precision in args.precision:
        model = policy(config, data)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
        drawn = iter(batches)

        def loss():
            with autocast:
                return model.loss(next(drawn))[0]
        step = train_step(model, loss)
        step()  # warm-up
        per_batch = min(_timed(step) for _ in range(args.batches))
        model.eval()
        env = TMazeVectorEnv(envs, 2 * K * N)
        with torch.no_grad(), autocast:
            rollout(model, env, target_return=1.0, seed=0, max_steps=K + 2)  # warm-up
            start = time.perf_counter()
            out = rollout(model, env, target_return=1.0, seed=1, max_steps=2 * K * N + 2)
        seconds = time.perf_counter() - start
        steps = int(out.lengths.max())  # all corridors run in lockstep
        row = {"train_s_per_batch": per_batch, "windows_per_s": batch_size / per_batch,
               "tokens_per_s": tokens / per_batch, "eval_ms_per_step": seconds / steps * 1e3,
               "eval_steps_per_s": steps / seconds, "eval_env_steps_per_s": out.env_steps / seconds}
        report["precision"][precision] = row
        print(f"[{precision:>4}] training   {per_batch:8.2f} s/batch   {row['windows_per_s']:8.1f} windows/s   "
              f"{row['tokens_per_s']:10,.0f} tokens/s", flush=True)
        print(f"[{precision:>4}] evaluation {row['eval_ms_per_step']:8.1f} ms/step of {envs} envs   "
              f"{row['eval_steps_per_s']:8.1f} steps/s   {row['eval_env_steps_per_s']:10,.0f} env steps/s", flush=True)
    return report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", help="root of an exported RATE repository (its RATE/ package); none: rmdt only")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default 2; --throughput 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up (best kept)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round, no compile, one memory run")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    parser.add_argument("--segments", type=int, default=0, help="adds memory rows for windows of this many segments")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="overrides of configs/tmaze/rate.yaml for every rmdt row, e.g. model.memory_update=gated")
    parser.add_argument("--throughput", action="store_true", help="training and evaluation throughput per precision")
    parser.add_argument("--precision", choices=["no", "bf16"], nargs="+", default=["no", "bf16"],
                        help="--throughput: CPU autocast settings to compare")
    parser.add_argument("--batches", type=int, default=3, help="--throughput: timed training batches (best kept)")
    parser.add_argument("--out", default=None,
                        help="JSON written beside the table (default runs/bench/speed.json, or throughput.json)")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: one configuration's peak memory
    args = parser.parse_args(argv)
    args.threads = args.threads or (1 if args.throughput else 2)
    if args.memory_of:
        return memory_child(args)
    torch.set_num_threads(args.threads)
    out = args.out or f"runs/bench/{'throughput' if args.throughput else 'speed'}.json"
    if args.throughput:
        report = throughput(args)
        write_text(out, json.dumps(report, indent=1))
        print(f"\nJSON: {out}")
        return report
    config = rate_config(args)
    data = tmaze_data(config)
    batch = tmaze_batch(config, data)
    builders, names = rows(args, compile=not (args.quick or args.no_compile))
    built = {name: build(data, batch) for name, build in builders.items()}
    d, m, dt = config.data, config.model, DT_QUICK if args.quick else DT_FULL
    print(f"{torch.get_num_threads()} threads; T-Maze K={d.context_len} N={d.num_segments} batch "
          f"{config.training.batch_size}, {m.n_layers} layers, d_model {m.d_model}; DT K={dt.K} d_model {dt.d} "
          f"{dt.layers} layers batch {dt.batch}", flush=True)
    params = {name: sum(p.numel() for p in model.parameters()) for name, (model, _) in built.items()}
    flops, first, times = interleaved({name: step for name, (_, step) in built.items()},
                                      1 if args.quick else args.repeats)
    limit = matmul_limit(args.threads, args.quick)
    memory_rows = [names[r] for r in ("reference", "base", "no dropout", "attention dropout", "checkpoint")
                   if r in names]
    memory = {name: peak_memory(name, args) for name in (memory_rows[:1] if args.quick else memory_rows)}
    if args.segments:  # memory of a long window (many segments), with and without recomputation
        for name in (names["base"], names["checkpoint"]):
            memory[f"{name}, N={args.segments}"] = peak_memory(name, args, args.segments)
    print("  memory: " + ", ".join(f"{n}: {m['peak_gb'] if m else 'failed'}" for n, m in memory.items()), flush=True)
    report = {"threads": args.threads, "config": dataclasses.asdict(config), "dt_sizes": dt._asdict(),
              "rows": names, "parameters": params, "matmul_flops": flops, "first_call_s": first, "times_s": times,
              "best_s": {n: min(t) for n, t in times.items()}, "matmul_limit_gflops": limit, "memory": memory}
    print_table(report)
    write_text(out, json.dumps(report, indent=1))
    print(f"\nJSON: {out}")
    return report


def print_table(r: dict) -> None:
    best, flops, memory, names = r["best_s"], r["matmul_flops"], r["memory"], r["rows"]
    base = best.get(names.get("reference"))
    peak = r["matmul_limit_gflops"]["square 1024"]
    print(f"\nfp32 matmul limit: {peak:.1f} GFLOP/s (1024^2 product), "
          f"{r['matmul_limit_gflops']['skinny 23040x64x192']:.1f} GFLOP/s ((B*T, 64) x (64, 192))")
    print("\n| configuration | parameters | s per batch (best) | speed-up vs RATE reference | matmul GFLOP | "
          "GFLOP/s | share of the matmul limit | peak RSS GB (growth in the batch) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, seconds in best.items():
        f = flops.get(name)
        mem = memory.get(name)
        cells = [name, f"{r['parameters'][name]:,}", f"{seconds:.3f}",
                 f"{base / seconds:.2f}x" if base and "DT" not in name and "FFM" not in name else "",
                 f"{f / 1e9:.1f}" if f else "", f"{f / 1e9 / seconds:.1f}" if f else "",
                 f"{f / 1e9 / peak / seconds:.0%}" if f else "",
                 f"{mem['peak_gb']:.2f} ({mem['growth_gb']:.2f})" if mem else ""]
        print("| " + " | ".join(cells) + " |")
    for name, mem in memory.items():
        if name not in best and mem:
            print(f"| {name} (memory only) | | | | | | | {mem['peak_gb']:.2f} ({mem['growth_gb']:.2f}) |")
    dropout = r["config"]["model"]["dropout"]
    n = {role: names.get(role) for role in ("reference", "base", "no dropout", "replace", "replace, no dropout",
                                            "attention dropout", "checkpoint", "compiled")}
    ratios = [(f"dropout {dropout:g} / dropout 0, {n['base'].split(',')[0]}", n["base"], n["no dropout"]),
              (f"dropout {dropout:g} / dropout 0, rmdt replace", n["replace"], n["replace, no dropout"]),
              (f"attention dropout 0.2 / 0, {n['base'].split(',')[0]}", n["attention dropout"], n["base"]),
              ("checkpoint_segments on / off", n["checkpoint"], n["base"]),
              (f"compiled / eager, {n['base'].split(',')[0]}", n["compiled"], n["base"]),
              ("compiled / eager, FFM", "FFM, compiled", FFM_ROW),
              ("DT: rmdt / Hugging Face, attention dropout 0.1", "DT rmdt, attention dropout 0.1",
               "DT Hugging Face, attention dropout 0.1"),
              ("DT: rmdt / Hugging Face, attention dropout 0", "DT rmdt, attention dropout 0",
               "DT Hugging Face, attention dropout 0"),
              (f"RATE reference / {n['base']}", n["reference"], n["base"])]
    print("\n| ratio of best times | value |\n|---|---|")
    for text, a, b in ratios:
        if a in best and b in best and a != b:
            print(f"| {text} | {best[a] / best[b]:.2f} |")
    for name, seconds in r["first_call_s"].items():
        if "compiled" in name:
            print(f"| first call (compilation) of {name}, s | {seconds:.1f} |")


if __name__ == "__main__":
    main()
