"""Forward + backward time of each memoroid layer (both scans) against torch's GRU and LSTM.

    OMP_NUM_THREADS=1 python bench/perf/memoroid_vs_rnn.py [--lengths 256 1024 4096] [--repeats 5]

Batch 16, hidden 128, float32, one thread, one sequence per row (a start flag at t=0). Each figure
is the best of ``--repeats`` timed runs after one warm-up (the minimum is what the code costs;
the rest is interference from other processes). The repeats go round-robin over the layers, so a
burst of load from another process hits all of them alike. Ratios are time / LSTM time: below 1
beats LSTM.
"""
from __future__ import annotations

import argparse
import time

import torch

from rmdt.models.memoroid_layers import FFM, LRU, LinearAttention

BATCH, HIDDEN = 16, 128


def best_ms(fns: dict, repeats: int) -> dict:
    """name -> best time in ms of ``fns[name]()``, each repeat timing every function once in turn."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * min(values) for name, values in times.items()}


def candidates():
    """name -> (module, call(module, x, starts) returning the output)."""
    layers = {"ffm (m=32, c=4)": FFM(HIDDEN, memory_size=32, context_size=4),
              "linear attention (4 heads, key 16)": LinearAttention(HIDDEN, n_heads=4, key_size=16),
              "lru (state 64)": LRU(HIDDEN, state_size=64)}
    out = {}
    for name, layer in layers.items():
        for mode in ("sequential", "parallel"):
            out[f"{name} {mode}"] = (layer, lambda m, x, s, mode=mode: m(x, s, mode=mode)[0])
    out["torch GRU"] = (torch.nn.GRU(HIDDEN, HIDDEN, batch_first=True), lambda m, x, s: m(x)[0])
    out["torch LSTM"] = (torch.nn.LSTM(HIDDEN, HIDDEN, batch_first=True), lambda m, x, s: m(x)[0])
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 1024, 4096], help="sequence lengths")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (the best is kept)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models = candidates()
    times = {name: {} for name in models}
    for length in args.lengths:
        x = torch.randn(BATCH, length, HIDDEN, requires_grad=True)
        starts = torch.zeros(BATCH, length, dtype=torch.bool)
        starts[:, 0] = True
        def step(module, call):
            module.zero_grad(set_to_none=True)
            call(module, x, starts).sum().backward()
        best = best_ms({name: lambda m=module, c=call: step(m, c) for name, (module, call) in models.items()},
                       args.repeats)
        for name, ms in best.items():
            times[name][length] = ms
            print(f"  {name:45s} T={length:5d}  {ms:9.1f} ms", flush=True)
    lstm, gru = times["torch LSTM"], times["torch GRU"]
    print(f"\nforward+backward, batch {BATCH}, hidden {HIDDEN}, float32, {torch.get_num_threads()} thread(s); "
          "ms (time / LSTM, time / GRU)")
    print("| layer | " + " | ".join(f"T={n}" for n in args.lengths) + " |")
    print("|---|" + "---|" * len(args.lengths))
    for name, row in times.items():
        cells = [f"{row[n]:.0f} ms ({row[n] / lstm[n]:.2f}x, {row[n] / gru[n]:.2f}x)" for n in args.lengths]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
