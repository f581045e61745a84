"""Attention maps of an evaluation run, written to files: one ``.npz`` per episode, heatmaps per layer, the
memory read/write summary and an ``attention.json`` index.

The evaluation runs as ``rmdt.evaluation.evaluate_policy`` runs it, with the rollouts recording their
first episodes (rmdt.evaluation.rollout.recording); afterwards each recorded episode goes once through
the model's forward pass with ``output_attentions`` (rmdt.evaluation.attention.episode_maps). The
policy acts exactly as in any evaluation. Models without attention (recurrent baselines) get the
per-step norm of their state instead (rmdt.evaluation.probe).
"""
from __future__ import annotations

import json
from pathlib import Path

from rmdt.atomic import write_text
from rmdt.evaluation.attention import AttentionMaps, episode_maps, has_attention
from rmdt.evaluation.attention_plots import plot_layer, plot_memory_summary
from rmdt.evaluation.probe import export_state_norm, state_norms
from rmdt.evaluation.rollout import recording


def export_maps(maps: AttentionMaps, out_dir, name: str, title: str = "", per_head: bool = False) -> list[Path]:
    """Writes ``name.npz``, ``name_layerL.png`` per layer (``_heads`` too on request) and, with memory,
    ``name_memory.png``; returns the paths written."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{name}.npz"]
    maps.save(paths[0])
    for layer in range(maps.weights.shape[1]):
        paths.append(out_dir / f"{name}_layer{layer}.png")
        plot_layer(maps, layer, paths[-1], title)
        if per_head:
            paths.append(out_dir / f"{name}_layer{layer}_heads.png")
            plot_layer(maps, layer, paths[-1], title, per_head=True)
    if maps.memory_tokens:
        paths.append(out_dir / f"{name}_memory.png")
        plot_memory_summary(maps, paths[-1], title)
    return paths


def export_attention(policy, evaluation, out_dir, overrides: dict | None = None, episodes: int = 2,
                     max_segments: int | None = 64, per_head: bool = False, device="cpu",
                     progress: bool = True) -> dict:
    """Evaluates as ``rmdt.evaluation.evaluate_policy`` does and exports the first ``episodes``
    environments of every rollout (``NN_episodeE.*``, NN = the evaluated setting), each up to
    ``max_segments`` segments (None: all; 64 segments of 106 tokens and 4 heads hold 12 MB per
    layer and episode); writes and returns an index (``attention.json``) with the evaluation report
    and the files of each setting.

    Maps cover the steps each episode really took: an environment is recorded until its first
    episode ends, so with ``num_envs`` below ``episodes`` only the first ``num_envs`` episodes are
    exported. Rows the rollout never ran (the episode's last action, a write after the last
    segment) are zero and marked not computed. Models without attention (recurrent baselines) get
    their per-step state norm instead of maps.
    """
    from rmdt.evaluation import env_evaluator, evaluate_policy

    attention = has_attention(policy)
    if attention and getattr(policy.config, "dt_context", "segments") == "sliding":
        raise ValueError("attention maps are recorded per segment; this DT plays with dt_context 'sliding' "
                         "(a re-run window every step): export it from a dt_context 'segments' copy")
    max_steps = max_segments * policy.config.context_len if attention and max_segments is not None else None
    out_dir = Path(out_dir)
    with recording(episodes, max_steps) as rollouts:
        report = evaluate_policy(policy, evaluation, overrides, device, progress)
    describe = env_evaluator(report["env"]).describe
    rows = report["results"] if len(report["results"]) == len(rollouts) else [None] * len(rollouts)
    index = {"report": report, "max_segments": max_segments, "settings": []}
    if not attention:
        index["note"] = (f"{type(policy).__name__} has no attention maps (it is not a transformer); "
                         "exported: its per-step state norm")
    for r, (recorded, row) in enumerate(zip(rollouts, rows)):
        title = describe(row) if row is not None else f"rollout {r}"
        files = []
        if attention:
            for e, maps in enumerate(episode_maps(policy, recorded, device)):
                files += export_maps(maps, out_dir, f"{r:02d}_episode{e}", title, per_head)
        else:
            for e, norm in enumerate(state_norms(policy, recorded, device)):
                files += export_state_norm(norm, out_dir, f"{r:02d}_episode{e}", title)
        index["settings"].append({"row": row, "files": [str(f.relative_to(out_dir)) for f in files]})
    write_text(out_dir / "attention.json", json.dumps(index, indent=2))
    return index


def export_checkpoint_attention(checkpoint, out_dir, overrides: dict | None = None, episodes: int = 2,
                                max_segments: int | None = 64, per_head: bool = False, device="cpu",
                                progress: bool = True) -> dict:
    """``export_attention`` of a checkpoint (a path or a loaded ``rmdt.evaluation.Checkpoint``): an
    evaluation run of ``episodes`` environments per setting, each exported to ``out_dir``.

    Returns the index also written to ``out_dir/attention.json``.
    """
    from rmdt.evaluation import as_checkpoint

    model_dir, policy, evaluation = as_checkpoint(checkpoint, device)
    index = export_attention(policy, evaluation, out_dir, {**(overrides or {}), "episodes": episodes}, episodes,
                             max_segments, per_head, device, progress)
    index["checkpoint"] = str(model_dir.resolve())
    write_text(Path(out_dir) / "attention.json", json.dumps(index, indent=2))
    return index
