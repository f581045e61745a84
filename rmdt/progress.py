"""Progress bars that stay readable in log files as well as in terminals."""
from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm


def progress_bar(**kwargs) -> tqdm:
    """tqdm that redraws often in a terminal and only every 30 s when stderr goes to a file."""
    interactive = sys.stderr.isatty()
    kwargs.setdefault("mininterval", 0.2 if interactive else 30.0)
    return tqdm(dynamic_ncols=interactive, **kwargs)


class BarSafeHandler(logging.StreamHandler):
    """A console handler that writes through tqdm: an open bar is cleared, the line written on a line
    of its own and the bar redrawn below it (a plain write would land after the bar, on its line)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # as logging.StreamHandler does: report, never raise into the caller
            self.handleError(record)
