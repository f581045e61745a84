"""Pictures of attention maps (rmdt.evaluation.attention): per-layer heatmaps with token-type bands and a
legend, and the memory read/write summary."""
from __future__ import annotations

import numpy as np

from rmdt.evaluation.attention import TOKEN_TYPES, AttentionMaps, memory_summary
from rmdt.plotting import pyplot, save_png

COLORS = ("#7b3294", "#e66101", "#1b7837", "#2166ac", "#c51b7d", "#8c8c8c")  # one per TOKEN_TYPES entry


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
    bands = ListedColormap(COLORS)
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

    fig.legend(handles=[Patch(color=c, label=n) for c, n in zip(COLORS, TOKEN_TYPES)], loc="lower center",
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
