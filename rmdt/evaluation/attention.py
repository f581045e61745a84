"""Attention maps of RMDT and DT: capture, one ``.npz`` per episode, heatmaps and a read/write summary.

Capture switches the attention of every transformer block to explicit softmax weights (the fused
SDPA path hides them) only inside ``capture_attention``; outside it the model runs unchanged. The
weights of every call are placed into the full square of their segment,
``[cache C ; read M ; (R, o, a) x K ; write M]`` (cache keys: the hidden-state cache, C = cache_len,
never queries), so a map recorded step by step in a rollout (where a step's
queries see the segment's key/value cache) and a map of the whole-window forward pass are the same
picture. Row = query token, column = key token. The Memory Retention Valve's cross-attention is not
part of these maps.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rmdt.atomic import atomic_path, write_text
from rmdt.plotting import pyplot, save_png

TOKEN_TYPES = ("read", "return", "observation", "action", "write", "cache")
READ, RETURN, OBSERVATION, ACTION, WRITE, CACHE = range(len(TOKEN_TYPES))
_SHORT = ("m", "R", "o", "a", "w", "c")  # label prefixes: m3 = read slot 3, o7 = observation of segment step 7, c0 = oldest cache slot
_COLORS = ("#7b3294", "#e66101", "#1b7837", "#2166ac", "#c51b7d", "#8c8c8c")


@dataclass
class AttentionMaps:
    """One episode's (or one dataset window's) attention, segment by segment."""

    weights: np.ndarray  # (S, n_layers, n_heads, T, T) float32 softmax weights; row = query, column = key
    allowed: np.ndarray  # (S, T, T) bool: the keys each query may attend (the model's segment mask)
    computed: np.ndarray  # (S, T) bool: rows that were run on real steps; other rows are all zero
    token_step: np.ndarray  # (S, T) int: episode step of each R, o, a token; -1 for memory tokens
    context_len: int  # K
    memory_tokens: int  # M
    cache_len: int = 0  # C: hidden-state cache keys in front of the segment's tokens

    @property
    def token_type(self) -> np.ndarray:
        """(T,) index into TOKEN_TYPES."""
        return token_layout(self.context_len, self.memory_tokens, self.cache_len)[0]

    @property
    def token_label(self) -> np.ndarray:
        """(T,) readable names: c0.. cache slots, m0.. read slots, R0 o0 a0 .. per segment step, w0.. write slots."""
        kind, slot = token_layout(self.context_len, self.memory_tokens, self.cache_len)
        return np.array([f"{_SHORT[k]}{s}" for k, s in zip(kind, slot)])

    def save(self, path: str | Path) -> None:
        """A compressed ``.npz`` with the maps, the token labels and the memory read/write summary."""
        read, write = memory_summary(self)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f, weights=self.weights, allowed=self.allowed, computed=self.computed,
                token_step=self.token_step, token_type=self.token_type, token_label=self.token_label,
                token_type_names=np.array(TOKEN_TYPES), context_len=self.context_len,
                memory_tokens=self.memory_tokens, cache_len=self.cache_len, read_mass=read, write_mass=write)

    @classmethod
    def load(cls, path: str | Path) -> "AttentionMaps":
        with np.load(path) as f:
            return cls(weights=f["weights"], allowed=f["allowed"], computed=f["computed"],
                       token_step=f["token_step"], context_len=int(f["context_len"]),
                       memory_tokens=int(f["memory_tokens"]),
                       cache_len=int(f["cache_len"]) if "cache_len" in f.files else 0)


def token_layout(context_len: int, memory_tokens: int, cache_len: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T,) token type and (T,) slot (cache or memory slot, or step within the segment) of a segment's tokens."""
    K, M, C = context_len, memory_tokens, cache_len
    kind = np.concatenate([np.full(C, CACHE), np.full(M, READ), np.tile([RETURN, OBSERVATION, ACTION], K),
                           np.full(M, WRITE)])
    slot = np.concatenate([np.arange(C), np.arange(M), np.repeat(np.arange(K), 3), np.arange(M)])
    return kind, slot


def _trajectory(kind: np.ndarray):
    return (kind == RETURN) | (kind == OBSERVATION) | (kind == ACTION)


def has_attention(model) -> bool:
    """True for models whose blocks run ``rmdt.models.transformer.Attention`` (RMDT, DT)."""
    from rmdt.models.transformer import Attention

    blocks = getattr(model, "blocks", None)
    return bool(blocks) and all(isinstance(getattr(block, "attn", None), Attention) for block in blocks)


def _attention_layers(model) -> list:
    if not has_attention(model):
        raise TypeError(f"{type(model).__name__} has no transformer blocks, so no attention maps "
                        "(only RMDT and DT have them; recurrent models carry a state instead)")
    return [block.attn for block in model.blocks]


class _SegmentRecorder:
    """Receives one layer's attention calls and writes them into full per-segment squares, per batch row.

    A call holds the whole batch, or the batch rows ``rows`` (a pass over some rows: a restart or a
    segment boundary). Its queries stand at their segment ``slots`` with the segment buffer as keys
    (one slot per token, the last one scratch), or, without slots, are the last ``n_query`` of its
    keys (the segment's tokens so far plus the new ones). A call whose queries include the
    segment's first token (slot ``offset``: the hidden-state cache's keys come first) starts that row's next segment: the read tokens' own pass, the first
    step of a DT segment, or a whole segment of the forward pass. Rows not in ``keep`` (None: all),
    rows ``stop``ped (their episode ended) and rows past ``max_segments`` segments are ignored, so
    a long episode cannot fill the memory.
    """

    def __init__(self, size: int, keep, max_segments: int | None = None, offset: int = 0):
        self.size, self.max_segments, self.offset = size, max_segments, offset
        self.keep = None if keep is None else [int(b) for b in keep]
        self.segments: dict[int, list[torch.Tensor]] = {}  # batch row -> (H, T, T) squares
        self.rows_run: dict[int, list[torch.Tensor]] = {}  # batch row -> (T,) bool each
        self.stopped: set[int] = set()

    def recorded_rows(self) -> list[int]:
        """The batch rows recorded, in ``keep`` order (else ascending)."""
        rows = sorted(self.segments) if self.keep is None else self.keep
        return [b for b in rows if self.segments.get(b)]

    def stop(self, rows) -> None:
        self.stopped.update(int(b) for b in rows)

    def __call__(self, weights: torch.Tensor, slots: torch.Tensor | None = None, rows=None) -> None:
        n_query, n_key = weights.shape[-2:]
        if slots is None:
            if n_key > self.size:
                raise ValueError(f"an attention call has {n_key} keys, more than a segment's {self.size} tokens")
            columns, slots = n_key, torch.arange(n_key - n_query, n_key).expand(weights.shape[0], -1)
        else:
            columns = n_key - 1  # the scratch slot is no token of the segment
        batch_rows = range(weights.shape[0]) if rows is None else rows.tolist()
        for i, b in enumerate(batch_rows):
            if b in self.stopped or (self.keep is not None and b not in self.keep):
                continue
            segments, rows_run = self.segments.setdefault(b, []), self.rows_run.setdefault(b, [])
            query = slots[i].cpu()
            if bool((query == self.offset).any()):
                if len(segments) == self.max_segments:
                    self.stopped.add(b)
                    continue
                segments.append(torch.zeros(weights.shape[1], self.size, self.size))  # on the CPU
                rows_run.append(torch.zeros(self.size, dtype=torch.bool))
            real = query < columns
            segments[-1][:, query[real], :columns] = weights[i][:, real.to(weights.device), :columns].float().cpu()
            rows_run[-1][query[real]] = True


def _attach(model, keep, max_segments: int | None = None) -> list[_SegmentRecorder]:
    """Points every layer's attention capture at a fresh recorder; returns the recorders."""
    if getattr(model.config, "dt_context", "segments") == "sliding":
        raise ValueError("attention maps are recorded per segment; this DT plays with dt_context 'sliding' "
                         "(a re-run window every step): export it from a dt_context 'segments' copy")
    layers = _attention_layers(model)
    C = getattr(model.config, "cache_len", 0)
    size = C + 2 * model.config.memory_tokens + 3 * model.config.context_len
    recorders = [_SegmentRecorder(size, keep, max_segments, C) for _ in layers]
    for attn, recorder in zip(layers, recorders):
        attn.capture = recorder
    return recorders


def _detach(model) -> None:
    for attn in _attention_layers(model):
        attn.capture = None


@contextlib.contextmanager
def capture_attention(model, keep=None):
    """Inside the block, every layer's attention weights are recorded; yields the per-layer recorders.

    ``keep`` (indices into the batch) records only those rows, so a long rollout of many environments
    keeps only the episodes asked for. Outputs equal the fused path's up to float rounding (tested).
    """
    recorders = _attach(model, keep)
    try:
        yield recorders
    finally:
        _detach(model)


def assemble_maps(model, recorders, step_real: torch.Tensor, masked_padding: bool) -> list[AttentionMaps]:
    """Per recorded batch row (``recorded_rows`` order), the recorded segments that hold a real step
    (``step_real`` (b, L) bool, one row per recorded row).

    ``masked_padding``: padded steps were hidden by the mask (a window), so a partly real segment's
    write rows are real; in a rollout the steps after an episode's end are visible junk, so they are not.
    """
    from rmdt.models.rmdt import segment_mask

    K, M, C = model.config.context_len, model.config.memory_tokens, getattr(model.config, "cache_len", 0)
    kind, slot = (torch.as_tensor(a) for a in token_layout(K, M, C))
    trajectory = torch.as_tensor(_trajectory(kind.numpy()))
    step_of_token = torch.where(trajectory, slot, 0)
    out = []
    for j, b in enumerate(recorders[0].recorded_rows()):
        w = torch.stack([torch.stack(r.segments[b]) for r in recorders], dim=1)  # (S, layers, H, T, T)
        run = torch.stack(recorders[0].rows_run[b])  # (S, T)
        S = len(w)
        real = torch.zeros(S * K, dtype=torch.bool)
        real[:min(S * K, step_real.shape[1])] = step_real[j, :S * K]
        real = real.view(S, K)
        keep = real.any(dim=1)
        # every segment before a kept one is whole, so the cache holds min(C, 3K s) tokens at segment s
        held = torch.clamp(3 * K * torch.arange(S), max=C)[keep]
        real, w, run = real[keep], w[keep], run[keep]
        written = real.any(dim=1) if masked_padding else real.all(dim=1)
        token_real = torch.where(trajectory, real[:, step_of_token],
                                 torch.where(kind == WRITE, written[:, None], True))[:, C:]
        token_real = torch.cat([torch.zeros(len(real), C, dtype=torch.bool), token_real], dim=1)  # cache: no query
        computed = run & token_real
        steps = torch.arange(S * K).view(S, K)[keep]
        out.append(AttentionMaps(
            weights=torch.where(computed[:, None, None, :, None], w, 0.0).numpy(),
            allowed=_allowed(segment_mask(real, M), held, C, M, K).numpy(), computed=computed.numpy(),
            token_step=torch.where(trajectory, steps[:, step_of_token], -1).numpy(), context_len=K,
            memory_tokens=M, cache_len=C))
    return out


def _allowed(mask: torch.Tensor, held: torch.Tensor, C: int, M: int, K: int) -> torch.Tensor:
    """(S, T, T) over ``[cache ; segment]`` from the segment mask (S, 1, T', T'): the last ``held`` (S,)
    cache slots are keys of the segment's trajectory tokens; cache rows are no queries."""
    from rmdt.models.hidden_cache import with_cache_columns

    if C == 0:
        return mask[:, 0]
    valid = torch.arange(C)[None, :] >= C - held[:, None]
    widened = with_cache_columns(mask, valid, M, K)[:, 0]  # (S, T', C + T')
    return torch.cat([torch.zeros(len(held), C, C + mask.shape[-1], dtype=torch.bool), widened], dim=1)


@torch.no_grad()
def capture_window(model, returns_to_go, observations, actions, mask=None) -> list[AttentionMaps]:
    """The attention of the forward pass over (B, N*K) dataset windows, one AttentionMaps per row."""
    was_training = model.training
    model.eval()
    try:
        with capture_attention(model) as recorders:
            model(returns_to_go, observations, actions, mask)
    finally:
        model.train(was_training)
    if mask is None:
        mask = torch.ones(returns_to_go.shape, dtype=torch.bool)
    return assemble_maps(model, recorders, mask.cpu(), masked_padding=True)


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


class _Rollout:
    """What was recorded between one ``initial_state`` and the next."""

    def __init__(self, recorders, keep):
        self.recorders, self.keep = recorders, keep
        self.steps = 0
        self.lengths = torch.full((len(keep),), -1)  # steps of each kept episode; -1 while it runs
        self.state_norms: list[torch.Tensor] = []  # per step, (len(keep),); models without attention only

    def step_real(self) -> torch.Tensor:
        """(kept episodes, steps) bool: the steps each episode really took (the rest is lockstep junk)."""
        lengths = torch.where(self.lengths < 0, self.steps, self.lengths)
        return torch.arange(self.steps)[None, :] < lengths[:, None]


class _Recording:
    """Stands in for the policy inside an environment's ``evaluate``: records the first ``episodes``
    environments of every rollout (a rollout starts at each ``initial_state``); all else is delegated.
    """

    def __init__(self, policy, episodes: int, max_segments: int | None):
        self._policy, self._episodes, self._max_segments = policy, episodes, max_segments
        self._attention = has_attention(policy)
        self.rollouts: list[_Rollout] = []

    def __getattr__(self, name):
        return getattr(self._policy, name)

    def initial_state(self, batch_size: int, device=None):
        keep = torch.arange(min(self._episodes, batch_size))
        recorders = _attach(self._policy, keep.tolist(), self._max_segments) if self._attention else None
        self.rollouts.append(_Rollout(recorders, keep))
        return self._policy.initial_state(batch_size, device)

    def act(self, state, obs, last_action, last_reward, return_to_go):
        output, state = self._policy.act(state, obs, last_action, last_reward, return_to_go)
        rollout = self.rollouts[-1]
        rollout.steps += 1
        if not self._attention:
            rollout.state_norms.append(state_norm(state, obs.shape[0])[rollout.keep])
        return output, state

    def observe_done(self, done) -> None:
        """``done`` (B,) bool: the episodes that have ended; a kept row records its first episode only."""
        rollout = self.rollouts[-1]
        ended = torch.as_tensor(done)[rollout.keep] & (rollout.lengths < 0)
        rollout.lengths[ended] = rollout.steps
        for recorder in rollout.recorders or []:
            recorder.stop(rollout.keep[ended].tolist())


def export_attention(policy, evaluation, out_dir, overrides: dict | None = None, episodes: int = 2,
                     max_segments: int | None = 64, per_head: bool = False, device="cpu",
                     progress: bool = True) -> dict:
    """Evaluates as ``rmdt.evaluation.evaluate_policy`` does and exports the first ``episodes``
    environments of every rollout (``NN_episodeE.*``, NN = the evaluated setting), each up to
    ``max_segments`` segments (None: all; 64 segments of 106 tokens and 4 heads hold 12 MB per
    layer and episode); writes and returns an index (``attention.json``) with the evaluation report
    and the files of each setting.

    Maps cover the steps each episode really took: an environment is recorded until its first
    episode ends (later steps, of a restarted or finished environment, are not recorded or are
    marked not computed), so with ``num_envs`` below ``episodes`` only the first ``num_envs``
    episodes are exported. Models without attention (recurrent baselines) get their per-step state
    norm instead of maps.
    """
    from rmdt.evaluation import env_evaluator, evaluate_policy

    out_dir = Path(out_dir)
    recording = _Recording(policy, episodes, max_segments)
    try:
        report = evaluate_policy(recording, evaluation, overrides, device, progress)
    finally:
        if recording._attention:
            _detach(policy)
    describe = env_evaluator(report["env"]).describe
    rows = report["results"] if len(report["results"]) == len(recording.rollouts) else [None] * len(recording.rollouts)
    index = {"report": report, "max_segments": max_segments, "settings": []}
    if not recording._attention:
        index["note"] = (f"{type(policy).__name__} has no attention maps (it is not a transformer); "
                         "exported: its per-step state norm")
    for r, (rollout, row) in enumerate(zip(recording.rollouts, rows)):
        title = describe(row) if row is not None else f"rollout {r}"
        files = []
        if recording._attention:
            maps_of = assemble_maps(policy, rollout.recorders, rollout.step_real(), masked_padding=False)
            for e, maps in enumerate(maps_of):
                files += export_maps(maps, out_dir, f"{r:02d}_episode{e}", title, per_head)
        else:
            norms = torch.stack(rollout.state_norms, dim=1)  # (episodes, steps)
            for e, (norm, real) in enumerate(zip(norms, rollout.step_real())):
                files += export_state_norm(norm[real].numpy(), out_dir, f"{r:02d}_episode{e}", title)
        index["settings"].append({"row": row, "files": [str(f.relative_to(out_dir)) for f in files]})
    write_text(out_dir / "attention.json", json.dumps(index, indent=2))
    return index


def memory_summary(maps: AttentionMaps) -> tuple[np.ndarray, np.ndarray]:
    """How memory is read and written, per segment and layer (heads averaged).

    read (S, layers, M): mean weight that the real trajectory tokens put on each read slot.
    write (S, layers, M, len(TOKEN_TYPES)): the weight each write slot puts on each token type (rows sum to 1 when
    the segment's write ran, else 0).
    """
    M, C = maps.memory_tokens, maps.cache_len
    w = maps.weights.mean(axis=2)  # (S, layers, T, T)
    kind = maps.token_type
    queries = maps.computed & _trajectory(kind)[None]  # (S, T)
    count = np.maximum(queries.sum(axis=1), 1)[:, None, None]
    read = (w[:, :, :, C:C + M] * queries[:, None, :, None]).sum(axis=2) / count
    per_type = np.stack([w[:, :, -M:, kind == k].sum(axis=-1) for k in range(len(TOKEN_TYPES))], axis=-1) \
        if M else np.zeros((*w.shape[:2], 0, len(TOKEN_TYPES)), np.float32)
    return read.astype(np.float32), per_type.astype(np.float32)


# ---- plots ----
def _segments_to_show(maps: AttentionMaps, limit: int) -> list[int]:
    """Up to ``limit`` segments spread over the episode, always the first and the last."""
    S = len(maps.weights)
    return sorted({int(round(x)) for x in np.linspace(0, S - 1, min(S, limit))})


def _heatmap(ax, fig, square: np.ndarray, shown: np.ndarray, kind: np.ndarray, title: str) -> None:
    """One map on a square-root colour scale with token-type bands along both axes; entries not in
    ``shown`` (masked keys, rows that never ran) are light grey, so a tiny weight is not mistaken for
    a masked one."""
    from matplotlib.colors import ListedColormap, PowerNorm

    cmap = pyplot().get_cmap("viridis").with_extremes(bad="#e8e8e8")
    vmax = max(float(square[shown].max()) if shown.any() else 0.0, 1e-9)
    image = ax.imshow(np.ma.masked_where(~shown, square), cmap=cmap, norm=PowerNorm(0.5, vmin=0, vmax=vmax),
                      interpolation="nearest")
    bands = ListedColormap(_COLORS)
    top = ax.inset_axes([0, 1.01, 1, 0.035], sharex=ax)
    left = ax.inset_axes([-0.045, 0, 0.035, 1], sharey=ax)
    for band, strip in ((top, kind[None]), (left, kind[:, None])):
        band.imshow(strip, cmap=bands, vmin=0, vmax=len(TOKEN_TYPES) - 1, aspect="auto", interpolation="nearest")
        band.set_axis_off()
    ax.set_title(title, pad=14, fontsize=9)
    ax.set_xlabel("key token", fontsize=8)
    ax.set_ylabel("query token", fontsize=8, labelpad=10)
    ax.tick_params(labelsize=7)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)


def _legend(fig) -> None:
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(_COLORS, TOKEN_TYPES)], loc="lower center",
               ncol=len(TOKEN_TYPES), fontsize=8, frameon=False)


def plot_layer(maps: AttentionMaps, layer: int, path, title: str = "", per_head: bool = False,
               max_segments: int = 4) -> None:
    """PNG of one layer's maps for a few segments: heads averaged, or one row of panels per head."""
    plt = pyplot()
    shown = _segments_to_show(maps, max_segments)
    heads = list(range(maps.weights.shape[2])) if per_head else [None]
    fig, axes = plt.subplots(len(heads), len(shown), figsize=(4.2 * len(shown), 4.0 * len(heads) + 0.5),
                             squeeze=False)
    for r, head in enumerate(heads):
        for c, s in enumerate(shown):
            w = maps.weights[s, layer]
            square = w.mean(axis=0) if head is None else w[head]
            steps = maps.token_step[s][(maps.token_step[s] >= 0) & maps.computed[s]]
            span = f"steps {steps.min()}-{steps.max()}" if len(steps) else ""
            visible = maps.allowed[s] & maps.computed[s][:, None]
            _heatmap(axes[r, c], fig, square, visible, maps.token_type,
                     f"segment {s} ({span}), " + ("heads averaged" if head is None else f"head {head}"))
    fig.suptitle(f"{title}  layer {layer}".strip(), fontsize=10)
    _legend(fig)
    # fixed margins: tight_layout measures every tick of every panel and takes most of the time
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.05, right=0.97, bottom=0.6 / height, top=1 - 1.0 / height, wspace=0.3,
                        hspace=0.35)
    save_png(fig, path)


def plot_memory_summary(maps: AttentionMaps, path, title: str = "") -> None:
    """Read: weight on each read slot from trajectory tokens, per segment. Write: what each write slot reads."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    read, write = memory_summary(maps)
    M = maps.memory_tokens
    fig, (ax_read, ax_write) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    image = ax_read.imshow(read.mean(axis=1).T, aspect="auto", cmap="magma", interpolation="nearest")
    ax_read.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_read.set(xlabel="segment", ylabel="read slot", yticks=range(M),
                title="read: mean weight from trajectory tokens (layers, heads averaged)")
    fig.colorbar(image, ax=ax_read, fraction=0.046, pad=0.02)
    written = maps.computed[:, -M:].all(axis=1)  # segments whose write tokens ran
    mass = write[written].mean(axis=(0, 1)) if written.any() else np.zeros((M, len(TOKEN_TYPES)))
    image = ax_write.imshow(mass, aspect="auto", cmap="magma", vmin=0, vmax=1, interpolation="nearest")
    for (m, k), value in np.ndenumerate(mass):
        ax_write.text(k, m, f"{value:.2f}", ha="center", va="center", fontsize=7,
                      color="black" if value > 0.5 else "white")
    ax_write.set(xticks=range(len(TOKEN_TYPES)), xticklabels=TOKEN_TYPES, yticks=range(M), ylabel="write slot",
                 title=f"write: weight on each token type ({int(written.sum())} written segments)")
    ax_write.tick_params(axis="x", labelsize=7)
    fig.colorbar(image, ax=ax_write, fraction=0.046, pad=0.02)
    for ax in (ax_read, ax_write):
        ax.title.set_fontsize(9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_png(fig, path)


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
