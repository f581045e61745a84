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
