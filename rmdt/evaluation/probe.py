"""Memory probe: what does the memory carry? Evaluate with it intact, zeroed and shuffled.

The same evaluation (same environments, same seed) runs three times; in the last two every memory
written at a segment boundary is replaced before the next segment reads it, by zeros or by the
memory of another environment of the batch (a fresh derangement at each boundary, so none keeps
its own). Rows run their own episodes (rollout's queue), so a shuffle mixes only the rows that
cross a segment boundary at the same step, which are at the same position of their segments. A
model whose decisions depend on what memory carries from earlier segments loses performance; one
with no memory (DT) gets exactly the same results. Goes through the env registry, so it works in
every environment ``evaluate.py`` knows.

Models without segment memory (recurrent baselines) carry a state instead: ``state_norm`` measures it
and ``state_norms`` / ``export_state_norm`` give its per-step norm over recorded episodes (what the
attention export writes for them).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from rmdt.atomic import atomic_path, write_text
from rmdt.plotting import pyplot, save_png

INTERVENTIONS = ("intact", "zeroed", "shuffled")


def zero_memory(memory: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(memory)


class ShuffleMemory:
    """Gives every environment the memory of another one, with a new derangement at each call.

    A call holds the rows that cross a segment boundary together. A row that crosses alone (its
    episode restarted out of step with the others) gets a random one of the memories the previous
    call wrote instead, another row's unless that call held only itself.
    """

    def __init__(self, seed: int):
        self.generator = torch.Generator().manual_seed(seed)
        self.previous: torch.Tensor | None = None  # the memories the last call received

    def __call__(self, memory: torch.Tensor) -> torch.Tensor:
        n = memory.shape[0]
        if n < 2:
            if self.previous is None:
                raise ValueError("shuffling memory across environments needs at least 2 environments per batch")
            pick = torch.randint(len(self.previous), (1,), generator=self.generator)
            out, self.previous = self.previous[pick.to(memory.device)], memory
            return out
        order = torch.randperm(n, generator=self.generator)
        source = torch.empty_like(order)
        source[order] = order.roll(1)  # order[i] reads order[i - 1]'s memory: nobody reads its own
        self.previous = memory
        return memory[source.to(memory.device)]


def intervention(name: str, seed: int = 0):
    """The memory hook of an intervention (None for ``intact``); ``seed`` fixes the shuffles."""
    if name not in INTERVENTIONS:
        raise ValueError(f"memory intervention {name!r} is unknown (known: {', '.join(INTERVENTIONS)})")
    return {"intact": None, "zeroed": zero_memory, "shuffled": ShuffleMemory(seed)}[name]


def memory_probe(policy, evaluation, overrides: dict | None = None, device="cpu", progress: bool = True,
                 cache: bool = False) -> dict:
    """Evaluates ``policy`` once per intervention; returns the report (rows and scalars per intervention).

    ``evaluation`` and ``overrides`` are as for ``rmdt.evaluation.evaluate_policy``. ``cache``: the
    intervention zeroes or shuffles the hidden-state cache (RMDT ``cache_len``) too, together with
    the memory. Models without segment memory to intervene on (``set_memory_hook`` not
    implemented) raise NotImplementedError.
    """
    from rmdt.evaluation import env_evaluator, evaluate_policy

    by_intervention = {}
    for name in INTERVENTIONS:
        policy.set_memory_hook(intervention(name), cache=True) if cache else policy.set_memory_hook(intervention(name))
        try:
            report = evaluate_policy(policy, evaluation, overrides, device, progress)
        finally:
            policy.set_memory_hook(None)
        by_intervention[name] = {"results": report["results"],
                                 "scalars": env_evaluator(report["env"]).scalars(report["results"])}
    intact = by_intervention["intact"]["scalars"]
    for name in INTERVENTIONS[1:]:
        by_intervention[name]["drop"] = {k: intact[k] - v for k, v in by_intervention[name]["scalars"].items()}
    return {"env": report["env"], "target_return": report["target_return"], "seed": report["seed"],
            "cache": cache, "interventions": by_intervention}


def plot_probe(report: dict, path, title: str = "") -> None:
    """Grouped bars: each evaluated scalar (e.g. success at one corridor length) under each intervention."""
    plt = pyplot()
    names = list(report["interventions"]["intact"]["scalars"])
    x = np.arange(len(names))
    width = 0.8 / len(INTERVENTIONS)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 3.6))
    for i, (intervention_name, color) in enumerate(zip(INTERVENTIONS, ("#1b7837", "#b2182b", "#2166ac"))):
        values = [report["interventions"][intervention_name]["scalars"][n] for n in names]
        bars = ax.bar(x + (i - 1) * width, values, width, label=f"memory {intervention_name}", color=color)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(x, names, fontsize=8)
    ax.set(ylabel="evaluation scalar", title=title or f"memory probe ({report['env']})")
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=len(INTERVENTIONS), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)


def probe_checkpoint(checkpoint, overrides: dict | None = None, out=None, device="cpu", progress: bool = True,
                     cache: bool = False) -> Path:
    """The memory probe of a checkpoint (a path or a loaded ``rmdt.evaluation.Checkpoint``): memory intact,
    zeroed and shuffled (``cache``: the hidden-state cache with it).

    Writes the JSON report (default CHECKPOINT_RUN/eval/memory_probe.json) and a bar plot beside it;
    returns the JSON path. Models without segment memory (recurrent baselines) are a ValueError.
    """
    from rmdt.evaluation import as_checkpoint

    model_dir, policy, evaluation = as_checkpoint(checkpoint, device)
    try:
        report = memory_probe(policy, evaluation, overrides, device, progress, cache)
    except NotImplementedError as error:
        raise ValueError(f"{model_dir}: {error}") from error
    report["checkpoint"] = str(model_dir.resolve())
    out = Path(out) if out else model_dir.parent / "eval" / "memory_probe.json"
    write_text(out, json.dumps(report, indent=2))
    plot_probe(report, out.with_suffix(".png"), title=f"memory probe: {model_dir.parent.name or model_dir.name}")
    return out


# ---- the state of models without segment memory ----
def state_norm(state, batch_size: int) -> torch.Tensor:
    """(B,) L2 norm of everything in a policy state that has one row per environment.

    The generic view of a recurrent model's memory (any nesting of tensors, dataclasses, tuples,
    lists and dicts; complex values count by magnitude; flags and counters of other dtypes are skipped).
    """
    total = torch.zeros(batch_size)
    stack = [state]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            if (item.is_floating_point() or item.is_complex()) and item.dim() and item.shape[0] == batch_size:
                total += item.detach().abs().float().reshape(batch_size, -1).pow(2).sum(dim=1).cpu()
        elif dataclasses.is_dataclass(item):
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total.sqrt()


@torch.no_grad()
def state_norms(policy, episodes, device="cpu") -> list[np.ndarray]:
    """Per recorded episode (rmdt.evaluation.rollout.Episode), the norm of the policy's state after each of
    its recorded steps, replayed through ``act`` in one batch from a fresh state (a rollout's state is a
    function of what ``act`` saw, which the recording holds)."""
    steps = [len(e.observations) for e in episodes]
    if not episodes or not max(steps):
        return [np.zeros(0, np.float32) for _ in episodes]
    T, E = max(steps), len(episodes)

    def padded(name):
        arrays = [np.asarray(getattr(e, name)) for e in episodes]
        out = np.zeros((E, T, *arrays[0].shape[1:]), arrays[0].dtype)
        for b, a in enumerate(arrays):
            out[b, :len(a)] = a
        return torch.as_tensor(out, device=device)

    obs, actions, rewards, to_go = (padded(name) for name in ("observations", "actions", "rewards", "returns_to_go"))
    was_training = policy.training
    policy.eval()
    try:
        state, norms = policy.initial_state(E, device), []
        last_action, last_reward = torch.zeros_like(actions[:, 0]), torch.zeros_like(rewards[:, 0])
        for t in range(T):
            _, state = policy.act(state, obs[:, t], last_action, last_reward, to_go[:, t])
            norms.append(state_norm(state, E))
            last_action, last_reward = actions[:, t], rewards[:, t]
    finally:
        policy.train(was_training)
    norms = torch.stack(norms, dim=1).numpy()
    return [norms[b, :n] for b, n in enumerate(steps)]


def export_state_norm(norm: np.ndarray, out_dir, name: str, title: str = "") -> list[Path]:
    """A recurrent model's per-step state norm: ``name.npz`` and ``name_state_norm.png``."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.npz", out_dir / f"{name}_state_norm.png"]
    with atomic_path(paths[0]) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, state_norm=norm.astype(np.float32), step=np.arange(len(norm)))
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(np.arange(len(norm)), norm)
    ax.set(xlabel="step", ylabel="state norm (L2)", title=title)
    ax.title.set_fontsize(9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, paths[1])
    return paths
