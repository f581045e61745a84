"""Speed and memory at the RATE reference's own T-Maze setting, DT against Hugging Face, recomputed
segments and torch.compile: one table with ratios, JSON beside it (issue 15).

    python bench/speed.py --reference /tmp/rate_ref [--threads 2] [--repeats 3] [--out runs/bench/speed.json]
    python bench/speed.py --quick      # tiny sizes, no reference, no compile: seconds (run by the tests)

RATE's T-Maze setting: 10 layers, d_model 64, 4 heads, 15 memory tokens, valve with 2 heads and a
ReLU on the writes, no feed-forward in the blocks, dropout 0.2, attention dropout 0, K=50, N=3,
batch 128. The reference is not part of rmdt: export it outside the repository and pass its root,

    git --git-dir=<mirror of github.com/CognitiveAISystems/RATE> archive HEAD RATE | tar -x -C /tmp/rate_ref

and its model is imported from there. A training batch is forward, backward, gradient clipping and
an AdamW step: rmdt backpropagates through all N segments; the reference runs its own loop (memory
detached, backward and optimizer step per segment). All timed steps run round-robin in one process
(``--repeats`` rounds after a warm-up, the best of each kept), so load from other processes hits
them alike: compare ratios, not absolute times. Peak memory is the resident-set high-water mark of
a fresh subprocess per configuration running one batch. FLOPs are matmul work counted by
``torch.utils.flop_counter`` over one forward and backward. The fp32 matmul limit is the best
GFLOP/s of a 1024^2 matrix product (and of the model's own skinny shape) at the same thread count.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rmdt.atomic import write_text  # noqa: E402
from rmdt.data import SegmentSampler, Trajectories  # noqa: E402
from rmdt.data.segments import Batch  # noqa: E402
from rmdt.envs.registry import ENVS  # noqa: E402
from rmdt.models import RMDTConfig, RMDTModel  # noqa: E402
from rmdt.models.recurrent import RecurrentConfig, RecurrentModel  # noqa: E402


class Sizes(NamedTuple):
    K: int  # steps per segment
    N: int  # segments per window
    batch: int
    d_model: int
    layers: int
    heads: int
    memory: int  # memory tokens
    valve_heads: int
    dt_K: int  # DT against Hugging Face: context, width, layers, heads, batch
    dt_d: int
    dt_layers: int
    dt_heads: int
    dt_batch: int


FULL = Sizes(50, 3, 128, 64, 10, 4, 15, 2, 20, 128, 3, 1, 64)
QUICK = Sizes(4, 3, 4, 16, 2, 4, 2, 2, 4, 16, 1, 1, 4)
OBS, ACT = 11, 3  # hopper-like windows for the DT comparison


# ---- T-Maze windows and the models ----
def tmaze_batch(s: Sizes) -> Batch:
    buffers = ENVS.recipe("tmaze").oracle_buffers(episodes=max(4 * s.batch, 64), min_length=1,
                                                  max_length=s.K * s.N - 2, seed=0)
    data = Trajectories.from_episodes([(b.observations[:-1], b.actions, b.rewards) for b in buffers], num_actions=4)
    return SegmentSampler(data, s.K, s.N).batch(0, s.batch)


def rmdt_model(s: Sizes, memory_update="mrv", dropout=0.2, attn_dropout=0.0, checkpoint=False) -> RMDTModel:
    torch.manual_seed(0)
    model = RMDTModel(RMDTConfig(obs_shape=[4], num_actions=4, context_len=s.K, memory_tokens=s.memory,
                                 d_model=s.d_model, n_layers=s.layers, n_heads=s.heads, dropout=dropout,
                                 attn_dropout=attn_dropout, feed_forward=False, memory_update=memory_update,
                                 mrv_heads=s.valve_heads))
    model.checkpoint_segments = checkpoint
    return model.train()


def ffm_model(s: Sizes) -> RecurrentModel:
    """configs/tmaze/ffm.yaml's model."""
    torch.manual_seed(0)
    return RecurrentModel(RecurrentConfig(obs_shape=[4], num_actions=4, layer="ffm", d_model=64, n_layers=2,
                                          memory_size=32, context_size=4, horizon=1024)).train()


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


def reference_step(path: str, s: Sizes, batch: Batch, dropout: float):
    """The RATE reference's training loop on ``batch``: per segment, memory tokens detached, then
    forward, cross entropy over the real steps, backward, clip and AdamW step (its trainer's order)."""
    sys.path.insert(0, str(Path(path).resolve()))
    from RATE.RATE_model import RATE
    torch.manual_seed(0)
    model = RATE(state_dim=4, act_dim=4, n_layer=s.layers, n_head=s.heads, n_head_ca=s.valve_heads,
                 d_model=s.d_model, d_head=32, d_inner=32, dropout=dropout, dropatt=0.0, tgt_len=3 * s.K,
                 ext_len=0, mem_len=0, num_mem_tokens=s.memory, mem_at_end=True, env_name="tmaze",
                 mrv_act="relu", skip_dec_ffn=True, padding_idx=-10).train()
    torch.nn.init.xavier_uniform_(model.r_w_bias)
    torch.nn.init.xavier_uniform_(model.r_r_bias)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    states, rtgs = batch.observations.float(), batch.returns_to_go[..., None]
    actions = torch.where(batch.mask, batch.actions, -10)[..., None]

    def step():
        memory = None
        for seg in range(s.N):
            part = slice(seg * s.K, (seg + 1) * s.K)
            memory = model.mem_tokens.repeat(1, s.batch, 1) if memory is None else memory.detach()
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
def dt_windows(s: Sizes) -> dict:
    g = torch.Generator().manual_seed(0)
    B, K = s.dt_batch, s.dt_K
    return dict(states=torch.randn(B, K, OBS, generator=g), actions=torch.rand(B, K, ACT, generator=g) * 2 - 1,
                returns_to_go=torch.rand(B, K, generator=g) * 3, mask=torch.ones(B, K, dtype=torch.bool),
                timesteps=torch.randint(0, 1000 - K, (B, 1), generator=g) + torch.arange(K))


def rmdt_dt(s: Sizes, w: dict, attn_dropout: float):
    torch.manual_seed(0)
    model = RMDTModel(RMDTConfig(obs_shape=[OBS], act_dim=ACT, context_len=s.dt_K, memory_tokens=0, d_model=s.dt_d,
                                 n_layers=s.dt_layers, n_heads=s.dt_heads, dropout=0.1,
                                 attn_dropout=attn_dropout)).train()
    batch = Batch(returns_to_go=w["returns_to_go"], observations=w["states"], actions=w["actions"],
                  rewards=torch.zeros_like(w["returns_to_go"]), timesteps=w["timesteps"], mask=w["mask"])
    return model, train_step(model, lambda: model.loss(batch)[0])


def hf_dt(s: Sizes, w: dict, attn_dropout: float):
    from transformers import DecisionTransformerConfig, DecisionTransformerModel
    torch.manual_seed(0)
    config = DecisionTransformerConfig(state_dim=OBS, act_dim=ACT, hidden_size=s.dt_d, n_layer=s.dt_layers,
                                       n_head=s.dt_heads, n_inner=4 * s.dt_d, max_ep_len=1000, n_positions=3 * s.dt_K,
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
def configs(s: Sizes, reference: str | None, compile: bool) -> dict:
    """name -> builder returning (model, step); built lazily so a memory subprocess builds only one."""
    out = {}
    if reference:
        out["RATE reference, dropout 0.2"] = lambda b: reference_step(reference, s, b, 0.2)
    for update in ("mrv", "replace"):
        for p in (0.2, 0.0):
            out[f"rmdt {update}, dropout {p:g}"] = lambda b, u=update, p=p: _rmdt(b, rmdt_model(s, u, p))
    out["rmdt mrv, dropout 0.2, attention dropout 0.2"] = lambda b: _rmdt(b, rmdt_model(s, attn_dropout=0.2))
    out["rmdt mrv, dropout 0.2, checkpoint_segments"] = lambda b: _rmdt(b, rmdt_model(s, checkpoint=True))
    out["FFM (configs/tmaze/ffm.yaml model)"] = lambda b: _rmdt(b, ffm_model(s))
    if compile:
        out["rmdt mrv, dropout 0.2, compiled"] = lambda b: _rmdt(b, rmdt_model(s), compile=True)
        out["FFM, compiled"] = lambda b: _rmdt(b, ffm_model(s), compile=True)
    for p in (0.1, 0.0):
        out[f"DT rmdt, attention dropout {p:g}"] = lambda b, p=p: rmdt_dt(s, dt_windows(s), p)
        out[f"DT Hugging Face, attention dropout {p:g}"] = lambda b, p=p: hf_dt(s, dt_windows(s), p)
    return out


def _rmdt(batch, model, compile=False):
    return model, rmdt_step(model, batch, compile)


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


def peak_memory(name: str, args, segments: int = 0) -> dict | None:
    """Runs one training batch of ``name`` in a fresh process; its RSS before and high-water after."""
    command = [sys.executable, __file__, "--memory-of", name, "--threads", str(args.threads)]
    command += ["--quick"] if args.quick else []
    command += ["--reference", args.reference] if args.reference else []
    command += ["--segments", str(segments)] if segments else []
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:  # e.g. killed for memory on a shared machine
        print(f"  memory of {name}: exit {done.returncode}, {done.stderr.strip()[-300:]}", flush=True)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_child(args, s: Sizes) -> None:
    import psutil
    torch.set_num_threads(args.threads)
    model, step = configs(s, args.reference, compile=False)[args.memory_of](tmaze_batch(s))
    before = psutil.Process().memory_info().rss
    step()
    # VmHWM, not getrusage's ru_maxrss: that one survives exec and reports the parent's high-water mark.
    status = Path("/proc/self/status").read_text().splitlines()
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"rss_before_gb": before / 1e9, "peak_gb": peak / 1e9, "growth_gb": (peak - before) / 1e9}))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", help="root of an exported RATE repository (its RATE/ package); none: rmdt only")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up (best kept)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one round, no compile, one memory run")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile rows")
    parser.add_argument("--segments", type=int, default=0, help="adds memory rows for windows of this many segments")
    parser.add_argument("--out", default="runs/bench/speed.json", help="JSON written beside the table")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: one configuration's peak memory
    args = parser.parse_args(argv)
    s = QUICK if args.quick else FULL
    if args.memory_of:
        if args.segments:
            s = s._replace(N=args.segments)
        return memory_child(args, s)
    torch.set_num_threads(args.threads)
    batch = tmaze_batch(s)
    built = {name: build(batch) for name, build in configs(s, args.reference,
                                                          not (args.quick or args.no_compile)).items()}
    print(f"{torch.get_num_threads()} threads; T-Maze K={s.K} N={s.N} batch {s.batch}, {s.layers} layers, "
          f"d_model {s.d_model}; DT K={s.dt_K} d_model {s.dt_d} {s.dt_layers} layers batch {s.dt_batch}", flush=True)
    params = {name: sum(p.numel() for p in model.parameters()) for name, (model, _) in built.items()}
    flops, first, times = interleaved({name: step for name, (_, step) in built.items()},
                                      1 if args.quick else args.repeats)
    limit = matmul_limit(args.threads, args.quick)
    memory_rows = [n for n in built if n.startswith(("RATE", "rmdt mrv")) and "compiled" not in n]
    memory = {name: peak_memory(name, args) for name in (memory_rows[:1] if args.quick else memory_rows)}
    if args.segments:  # memory of a long window (many segments), with and without recomputation
        for name in ("rmdt mrv, dropout 0.2", "rmdt mrv, dropout 0.2, checkpoint_segments"):
            memory[f"{name}, N={args.segments}"] = peak_memory(name, args, args.segments)
    print("  memory: " + ", ".join(f"{n}: {m['peak_gb'] if m else 'failed'}" for n, m in memory.items()), flush=True)
    report = {"threads": args.threads, "sizes": s._asdict(), "parameters": params, "matmul_flops": flops,
              "first_call_s": first, "times_s": times, "best_s": {n: min(t) for n, t in times.items()},
              "matmul_limit_gflops": limit, "memory": memory}
    print_table(report)
    write_text(args.out, json.dumps(report, indent=1))
    print(f"\nJSON: {args.out}")
    return report


def print_table(r: dict) -> None:
    best, flops, memory = r["best_s"], r["matmul_flops"], r["memory"]
    base = best.get("RATE reference, dropout 0.2")
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
    ratios = [("dropout 0.2 / dropout 0, rmdt mrv", "rmdt mrv, dropout 0.2", "rmdt mrv, dropout 0"),
              ("dropout 0.2 / dropout 0, rmdt replace", "rmdt replace, dropout 0.2", "rmdt replace, dropout 0"),
              ("attention dropout 0.2 / 0, rmdt mrv", "rmdt mrv, dropout 0.2, attention dropout 0.2",
               "rmdt mrv, dropout 0.2"),
              ("checkpoint_segments on / off", "rmdt mrv, dropout 0.2, checkpoint_segments", "rmdt mrv, dropout 0.2"),
              ("compiled / eager, rmdt mrv", "rmdt mrv, dropout 0.2, compiled", "rmdt mrv, dropout 0.2"),
              ("compiled / eager, FFM", "FFM, compiled", "FFM (configs/tmaze/ffm.yaml model)"),
              ("DT: rmdt / Hugging Face, attention dropout 0.1", "DT rmdt, attention dropout 0.1",
               "DT Hugging Face, attention dropout 0.1"),
              ("DT: rmdt / Hugging Face, attention dropout 0", "DT rmdt, attention dropout 0",
               "DT Hugging Face, attention dropout 0"),
              ("RATE reference / rmdt mrv, both dropout 0.2", "RATE reference, dropout 0.2", "rmdt mrv, dropout 0.2")]
    print("\n| ratio of best times | value |\n|---|---|")
    for label, a, b in ratios:
        if a in best and b in best:
            print(f"| {label} | {best[a] / best[b]:.2f} |")
    for name, seconds in r["first_call_s"].items():
        if "compiled" in name:
            print(f"| first call (compilation) of {name}, s | {seconds:.1f} |")


if __name__ == "__main__":
    main()
