"""The one did-you-mean helper of rmdt's error messages."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean X?)"`` for the closest of ``known`` to ``name``, else ``" (known: a, b)"``, so a
    message reads ``f"unknown env {name!r}{did_you_mean(name, names)}"``."""
    known = [str(k) for k in known]
    close = difflib.get_close_matches(str(name), known, n=1)
    return f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(known)})"
