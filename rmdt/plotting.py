"""Figures as PNG files: a headless pyplot, and an atomic save that frees the figure."""
from __future__ import annotations

from rmdt.atomic import atomic_path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed); imported on use, as plots are rare."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(fig, path) -> None:
    """Writes ``fig`` to ``path`` atomically (a reader never sees half a PNG) and closes it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    pyplot().close(fig)


def episode_returns(ax, row: dict, x: float = 0.0, seed: int = 0, color: str = "black") -> None:
    """Each episode's return of an evaluation row as a jittered grey dot at ``x``, and the mean with
    its 95% interval (the row's ``returns``, ``mean_return`` and ``ci95``)."""
    import numpy as np

    returns = np.asarray(row["returns"])
    jitter = np.random.default_rng(seed).uniform(-0.15, 0.15, len(returns))
    ax.scatter(x + jitter, returns, s=12, alpha=0.5, color="grey", label="episodes")
    low, high = row["ci95"]
    ax.errorbar([x], [row["mean_return"]], yerr=[[row["mean_return"] - low], [high - row["mean_return"]]],
                fmt="o", color=color, capsize=4, label="mean, 95% CI")
