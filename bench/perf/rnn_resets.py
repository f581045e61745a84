"""Exact episode resets for GRU/LSTM on tapes (``rmdt.models.rnn_layers``): the runs between starts
packed into one fused call (``scan: parallel``) versus a per-step loop that zeroes the state at
starts (``scan: sequential``), timed side by side (the two alternate, so load from other processes
hits both alike), with one plain call over a tape without resets for reference.

    OMP_NUM_THREADS=1 python bench/perf/rnn_resets.py [--batch 16] [--steps 180] [--mean-episode 40] [--repeats 5]

Prints ms per forward + backward (best of ``--repeats``) and the largest output difference.
"""
from __future__ import annotations

import argparse
import time

import torch

from rmdt.models.rnn_layers import RNN_LAYERS, RNNLayer


def timed(fn) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    y, _ = fn()
    y.square().sum().backward()
    return (time.perf_counter() - start) * 1e3, y.detach()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=180)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--mean-episode", type=float, default=40.0, help="mean steps between starts")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(args.batch, args.steps, args.size)
    starts = torch.rand(args.batch, args.steps) < 1 / args.mean_episode
    starts[:, 0] = True
    no_resets = torch.zeros_like(starts)
    no_resets[:, 0] = True
    for cell in RNN_LAYERS:
        torch.manual_seed(0)
        layers = {mode: RNNLayer(args.size, cell, mode) for mode in ("parallel", "sequential")}
        layers["sequential"].load_state_dict(layers["parallel"].state_dict())
        state = layers["parallel"].initial_state(args.batch)
        best, outputs = {"parallel": float("inf"), "sequential": float("inf"), "no resets": float("inf")}, {}
        for _ in range(args.repeats):
            for mode, layer in layers.items():
                ms, outputs[mode] = timed(lambda: layer(x, starts, state))
                best[mode] = min(best[mode], ms)
            best["no resets"] = min(best["no resets"], timed(lambda: layers["parallel"](x, no_resets, state))[0])
        difference = (outputs["parallel"] - outputs["sequential"]).abs().max()
        print(f"{cell}: packed (parallel) {best['parallel']:.1f} ms, "
              f"step loop (sequential) {best['sequential']:.1f} ms "
              f"(loop / packed {best['sequential'] / best['parallel']:.2f}x); one call without resets "
              f"{best['no resets']:.1f} ms; max |difference| {difference:.1e}")


if __name__ == "__main__":
    main()
