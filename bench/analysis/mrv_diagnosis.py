"""Why does the Memory Retention Valve not learn T-Maze? Trains a memory update rule for a few steps and
prints, every ``--every`` steps: the loss, how much the loss of segments 2-3 depends on the memory written
after segment 1 (gradient norm at that memory), the gradient norm of the valve's parameters, how far
apart the memories of clue +1 and clue -1 corridors are after segment 1 (distance of the two means over
the mean spread within a clue), and, for the valve, how strongly the new memory depends on the old
memory versus on the write outputs (Jacobian norms estimated with random projections) and how alike
its M new memory slots are (mean pairwise cosine; 1 = every slot holds the same vector).

    OMP_NUM_THREADS=1 python bench/analysis/mrv_diagnosis.py configs/tmaze/rmdt.yaml \
        model.memory_update=mrv model.memory_replay=0
"""
from __future__ import annotations

import argparse

import torch

from rmdt.config import load_config
from rmdt.data import build_sampler, load_config_data
from rmdt.models.factory import build_policy
from rmdt.training.trainer import make_optimizer


def clue_separation(model, batch, K: int) -> float:
    """||mean(m | clue +1) - mean(m | clue -1)|| / mean within-clue distance to the mean, after segment 1."""
    with torch.no_grad():
        memory = model(batch.returns_to_go[:, :K], batch.observations[:, :K], batch.actions[:, :K],
                       batch.mask[:, :K]).memory.flatten(1)
    clue = batch.observations[:, 0, 1]
    up, down = memory[clue > 0], memory[clue < 0]
    spread = torch.cat([up - up.mean(0), down - down.mean(0)]).norm(dim=1).mean()
    return float((up.mean(0) - down.mean(0)).norm() / spread.clamp_min(1e-8))


def memory_gradient(model, batch, K: int) -> float:
    """Norm of d(loss on segments 2..N) / d(memory after segment 1), per window."""
    first = model(batch.returns_to_go[:, :K], batch.observations[:, :K], batch.actions[:, :K], batch.mask[:, :K])
    memory = first.memory.detach().requires_grad_()
    rest = model(batch.returns_to_go[:, K:], batch.observations[:, K:], batch.actions[:, K:], batch.mask[:, K:],
                 memory=memory)
    preds, mask = rest.action_preds, batch.mask[:, K:]
    loss = torch.nn.functional.cross_entropy(preds[mask], batch.actions[:, K:][mask])
    (grad,) = torch.autograd.grad(loss, memory)
    return float(grad.flatten(1).norm(dim=1).mean())


def valve_jacobians(model, batch) -> tuple[float, float, float]:
    """|J v| / |v| for random v, new memory w.r.t. old memory and w.r.t. write outputs (unit-variance
    random writes), and the mean pairwise cosine between the new memory's slots."""
    M, d = model.config.memory_tokens, model.config.d_model
    B = batch.mask.shape[0]
    old = model.memory.detach().expand(B, -1, -1).clone().requires_grad_()
    write = torch.randn(B, M, d).requires_grad_()
    new = model._update_memory(old, write)
    v = torch.randn_like(new)
    g_old, g_write = torch.autograd.grad((new * v).sum(), (old, write))
    unit = torch.nn.functional.normalize(new.detach(), dim=-1)
    cosine = ((unit @ unit.transpose(1, 2)).sum((1, 2)) - M).mean() / (M * M - M)
    return float(g_old.norm() / v.norm()), float(g_write.norm() / v.norm()), float(cosine)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=25)
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides + [f"training.steps={args.steps}"])
    data = load_config_data(config.data)
    sampler = build_sampler(config.data, data, config.seed)
    torch.manual_seed(config.seed)
    model = build_policy(config, data)
    optimizer, scheduler = make_optimizer(model, config)
    K = config.data.context_len
    probe = sampler.batch(10**6, 256)  # a fixed batch no training step draws
    probe = probe[probe.mask[:, K:].any(dim=1)]  # corridors whose junction lies beyond segment 1
    print("step  loss    dL/dmemory  |grad valve|  clue separation  |J_old|  |J_write|  slot cosine")
    loss_value, valve_grad = float("nan"), 0.0  # no step trained yet
    for step in range(args.steps + 1):
        if step % args.every == 0:
            model.eval()
            sep, mem_grad = clue_separation(model, probe, K), memory_gradient(model, probe, K)
            jac = valve_jacobians(model, probe) if model.mrv is not None else (float("nan"),) * 3
            model.train()
            print(f"{step:4d}  {loss_value:.4f}  {mem_grad:10.2e}  {valve_grad:12.2e}  {sep:15.3f}"
                  f"  {jac[0]:7.3f}  {jac[1]:9.3f}  {jac[2]:11.5f}", flush=True)
        if step == args.steps:
            break
        loss, _ = model.loss(sampler.batch(step, config.training.batch_size))
        loss.backward()
        valve = [p.grad for n, p in model.named_parameters() if n.startswith(("mrv", "gate")) and p.grad is not None]
        valve_grad = float(torch.cat([g.flatten() for g in valve]).norm()) if valve else 0.0
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.training.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = float(loss.detach())


if __name__ == "__main__":
    main()
